"""``woodseg demo``: the whole W-OoD method on the embedded benchmark, with no data to download.

1. generate (or reuse) the spurious-correlation benchmark, in the VOC layout;
2. train the in-distribution classifier F_in (the baseline);
3. rank the candidate OoD pool by F_in's p(c), keep p(c) >= 0.5, and prune hidden positives with a
   *simulated* reviewer that reads the benchmark's hidden truth through the review app's own store;
4. fine-tune F_in with W-OoD on the kept hard OoD images (paper and/or official variant);
5. make multi-scale CAM seeds and judge them on the training images' masks and on a held-out split;
6. with ``demo.refine`` (``woodseg demo --full``), for the baseline and W-OoD: IR labels, IRN, random-walk
   pseudo masks (judged: the paper's Table 2 row Seed, +CRF, Mask), a DeepLab segmenter trained on the
   masks and judged on the held-out split (Table 3);
7. write one self-contained HTML report.

Outputs go to ``out_dir`` (``runs/demo``): ``baseline/``, ``ood/``, ``wood-<variant>/``, ``report.html``,
``summary.json``. Every step resumes or skips finished work.
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from woodseg.config import Config, DemoConfig, save_config
from woodseg.data.benchmark import BENCHMARK_VERSION, BenchmarkSpec, ensure_benchmark, read_pool_truth
from woodseg.data.build import load_dataset
from woodseg.data.ood_list import read_ood_list
from woodseg.evaluate.stage import print_seed_table
from woodseg.fsutil import atomic_write_json, read_jsonl
from woodseg.ood.resolution import config_scoring_long_side
from woodseg.pipeline.stages import run_stages
from woodseg.pipeline.steps import Timer, derive, mine_hard_ood, seed_stage, train_stage
from woodseg.runtime.device import stage_device

log = logging.getLogger(__name__)

REFINE_STAGES = ("ir_labels", "irn", "masks", "eval_masks", "segmenter", "predict", "eval_predictions")
"""The stages after the seeds' evaluation, run for the baseline and each W-OoD variant."""


def demo_settings(cfg: Config) -> DemoConfig:
    """The config's ``demo`` section (its defaults when the config has none)."""
    return cfg.demo or DemoConfig()


def benchmark_spec(cfg: Config) -> BenchmarkSpec:
    d = demo_settings(cfg)
    spec = BenchmarkSpec(seed=d.benchmark_seed)
    return spec.scaled(d.benchmark_scale) if d.benchmark_scale != 1.0 else spec


def benchmark_tag(spec: BenchmarkSpec) -> str:
    return f"spurious-context v{BENCHMARK_VERSION} (seed {spec.seed}, {spec.n_train_aug} train_aug images)"


def run_demo(cfg: Config, *, progress: bool = True, console: Console | None = None,
             cache_dir: Path | None = None) -> dict[str, Any]:
    """Run every step of the demo; returns the summary (also saved as ``summary.json``)."""
    console = console or Console()
    out = Path(cfg.out_dir)
    demo = demo_settings(cfg)
    timer = Timer()
    spec = benchmark_spec(cfg)
    root = timer.run("benchmark", lambda: ensure_benchmark(spec, cache_dir))
    tag = benchmark_tag(spec)
    console.print(f"[bold]benchmark[/bold] {tag} at {root}")
    save_config(derive(cfg, data={"root": str(root)}, demo=demo.model_dump(mode="json")), out / "config.yaml")
    cfg = derive(cfg, data={"root": str(root)}, demo=None)  # the runs' own configs hold no demo section
    protocol_extra = {"benchmark": tag}

    # 1. F_in
    base = derive(cfg, name="baseline", out_dir=str(out / "baseline"), wood={"variant": "none"},
                  train={"epochs": demo.baseline_epochs, "lr": demo.baseline_lr, "init_from": None})
    console.print("[bold]1/6[/bold] training the in-distribution classifier F_in (baseline)")
    f_in = timer.run("train baseline", lambda: train_stage(base, progress=progress))

    # 2. hard OoD from the pool
    console.print("[bold]2/6[/bold] ranking the candidate OoD pool by p(c) and pruning positives "
                  "([yellow]simulated reviewer reading the benchmark's hidden truth[/yellow])")
    truth = read_pool_truth(root)
    pool_root = root / "ood_pool"
    pool = read_ood_list(pool_root / "pool.txt", pool_root)

    def is_positive(entry: str, class_name: str) -> bool:
        return class_name in truth[Path(entry).stem].classes

    mining = timer.run("rank + review OoD pool", lambda: mine_hard_ood(
        f_in, pool, pool_root, out / "ood", is_positive=is_positive, threshold=demo.ood_threshold,
        per_class=demo.ood_per_class, long_side=config_scoring_long_side(base, f_in),
        batch_size=cfg.runtime.score_batch_size, device=str(stage_device(cfg.runtime.device, cfg.runtime.threads)),
        progress=progress))
    _print_review(console, mining.review)

    # 3. W-OoD (and the optional no-OoD control with the same schedule)
    runs: dict[str, Config] = {}
    if demo.control:
        # cam.splits None: the seed and held-out splits only. The control is judged, never refined, so
        # CAMs of the whole training split (which IRN and DeepLab need) would be work nobody reads.
        runs["F_in + same schedule, no OoD"] = derive(
            cfg, name="control", out_dir=str(out / "control"), wood={"variant": "none"},
            train={"init_from": str(f_in)}, cam={"splits": None})
    for variant in demo.variants:
        runs[f"W-OoD ({variant})"] = derive(
            cfg, name=f"wood-{variant}", out_dir=str(out / f"wood-{variant}"), wood={"variant": variant},
            train={"init_from": str(f_in)},
            data={"ood_list": str(mining.ood_list), "ood_root": str(pool_root)})
    for label, rcfg in runs.items():
        console.print(f"[bold]3/6[/bold] training {label} from F_in")
        timer.run(f"train {rcfg.name}", lambda rcfg=rcfg: train_stage(rcfg, progress=progress))

    # 4. seeds + evaluation
    all_runs = {"baseline (F_in)": base, **runs}
    results: dict[str, dict[str, Any]] = {}
    for label, rcfg in all_runs.items():
        console.print(f"[bold]4/6[/bold] CAM seeds and evaluation: {label}")
        results[label] = timer.run(f"seeds {rcfg.name}", lambda rcfg=rcfg: seed_stage(
            rcfg, progress=progress, extra_protocol=protocol_extra, quiet_table=True))
    print_seed_table(results, console)
    safeguards = timer.run("safeguard", lambda: _safeguards(runs, out / "control" if demo.control else None, console))

    # 5. pseudo masks and a segmentation network for the baseline and W-OoD (Tables 2 and 3)
    refined_runs = ({"baseline (F_in)": base, **{lbl: c for lbl, c in runs.items() if lbl.startswith("W-OoD")}}
                    if demo.refine else {})
    from woodseg.report.refined import refined_results

    refined: dict[str, dict[str, Any]] = {}
    for label, rcfg in refined_runs.items():
        console.print(f"[bold]5/6[/bold] IR labels, IRN, random walk, DeepLab: {label}")
        for stage in REFINE_STAGES:
            timer.run(f"{stage} {rcfg.name}", lambda rcfg=rcfg, stage=stage: run_stages(
                rcfg, start=stage, stop=stage, progress=progress, console=Console(quiet=True)))
        refined[label] = refined_results(Path(rcfg.out_dir), cfg.data.seed_split, cfg.data.heldout_split)
    if refined:
        print_refined_table(refined, console)

    summary: dict[str, Any] = {
        "benchmark": tag,
        "benchmark_root": str(root),
        "review": mining.review,
        "runs": {label: {"out_dir": str(rcfg.out_dir), **{s: r[s]["best"] | {"protocol": r[s]["protocol"]}
                                                          for s in r if s != "run"}}
                 for label, rcfg in all_runs.items() for r in [results[label]]},
        "refined": refined,
        "safeguard": safeguards,
        "timings_s": timer.seconds,
        "throughput": _throughput(all_runs),
        "machine": _machine(),
    }
    for r in summary["runs"].values():
        for split in list(r):
            if isinstance(r[split], dict):
                r[split].pop("confusion", None)

    # 5. report
    if demo.report:
        console.print("[bold]6/6[/bold] writing the report")
        from woodseg.report import ReportInputs, write_report

        ds = load_dataset(cfg.data)
        ood = read_ood_list(mining.ood_list, pool_root)
        labels = list(all_runs)
        report = timer.run("report", lambda: write_report(ReportInputs(
            title="W-OoD on the spurious-context benchmark",
            dataset=ds,
            runs={label: Path(rcfg.out_dir) for label, rcfg in all_runs.items()},
            baseline=labels[0],
            compare=[lbl for lbl in labels[1:]],
            ood_paths=list(ood.paths),
            refined={label: Path(rcfg.out_dir) for label, rcfg in refined_runs.items()},
            review=mining.review["classes"] | {"simulated": True},
            timings=timer.seconds,
            throughput=summary["throughput"],
            notes={"benchmark": tag, "machine": summary["machine"],
                   **{f"safeguard, {lbl}": sg["message"] for lbl, sg in safeguards.items()},
                   "reviewer": "simulated: reads the benchmark's hidden truth (a person would use `woodseg ood review`)"},
        ), out / "report.html", n_overlays=demo.overlays, batch_size=cfg.runtime.score_batch_size))
        summary["report"] = str(report)
        summary["timings_s"] = timer.seconds
        console.print(f"[bold green]report:[/bold green] {report}")
    atomic_write_json(out / "summary.json", summary)
    _print_timings(console, timer.seconds)
    return summary


def _safeguards(runs: dict[str, Config], control: Path | None, console: Console) -> dict[str, dict[str, Any]]:
    """The mask-free safeguard of each W-OoD run against F_in and the control (``eval/safeguard.json``)."""
    from woodseg.evaluate.safeguard import format_report, safeguard_for_config

    out: dict[str, dict[str, Any]] = {}
    for label, rcfg in runs.items():
        report = safeguard_for_config(rcfg, control) if label.startswith("W-OoD") else None
        if report is not None:
            console.print(f"{label}: " + format_report(report))
            out[label] = {k: report[k] for k in ("warn", "message", "reasons", "runs", "deltas", "rule")}
    return out


def print_refined_table(refined: dict[str, dict[str, Any]], console: Console) -> None:
    """Table 2 (Seed, +CRF, Mask on the judged split) and Table 3 (segmentation on the held-out split), in %."""
    from rich.table import Table

    if not refined:
        return
    first = next(iter(refined.values()))
    seg_names = list(first["segmentation"])
    table = Table(title=f"From seeds to segmentation (mIoU %): Seed, +CRF, Mask on split "
                        f"'{first['table2']['split']}'; segmentation on the held-out split")
    for col in ("run", "Seed", "+CRF", "Mask", *(f"seg {n}" for n in seg_names)):
        table.add_column(col, justify="left" if col == "run" else "right")
    for label, r in refined.items():
        t2 = r["table2"]
        table.add_row(label, *(f"{100 * t2[k]['miou']:.1f}" for k in ("seed", "crf", "mask")),
                      *(f"{100 * r['segmentation'][n]['miou']:.1f}" if n in r["segmentation"] else "-"
                        for n in seg_names))
    console.print(table)
    for key, name in (("seed", "Seed"), ("crf", "+CRF"), ("mask", "Mask")):
        console.print(f"[dim]{name}: {first['table2'][key]['protocol']}[/dim]")
    for n in seg_names:
        console.print(f"[dim]seg {n}: {first['segmentation'][n]['protocol']}[/dim]")


def _print_timings(console: Console, seconds: dict[str, float]) -> None:
    from rich.table import Table

    table = Table(title="Demo run time per step (s)")
    table.add_column("step")
    table.add_column("s", justify="right")
    for name, s in seconds.items():
        table.add_row(name, f"{s:.1f}")
    table.add_row("total", f"{sum(seconds.values()):.1f}")
    console.print(table)


def _print_review(console: Console, review: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="Hard-OoD review (simulated reviewer)")
    for col in ("class", "p>=thr", "reviewed", "kept", "rejected", "r", "cost n/(1-r)"):
        table.add_column(col, justify="right" if col != "class" else "left")
    for name, o in review["classes"].items():
        cost = "inf" if o["cost"] is None else f"{o['cost']:.1f}"
        table.add_row(name, str(review["n_candidates"].get(name, "")), str(o["reviewed"]), str(o["kept"]),
                      str(o["rejected"]), f"{o['r']:.2f}", cost)
    t = review["total"]
    table.add_row("all", str(sum(review["n_candidates"].values())), str(t["reviewed"]), str(t["kept"]),
                  str(t["rejected"]), f"{t['r']:.2f}", "")
    console.print(table)


def _throughput(runs: dict[str, Config]) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, rcfg in runs.items():
        path = Path(rcfg.out_dir) / "classifier" / "metrics.jsonl"
        if path.exists():
            rows = read_jsonl(path)[1:]  # the first step includes start-up
            if rows:
                out[f"train, in-distribution images/s: {label}"] = sum(r["images_per_s"] for r in rows) / len(rows)
    return out


def _machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, {gpu}, "
            f"torch {torch.__version__}")
