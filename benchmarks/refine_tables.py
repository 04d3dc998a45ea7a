"""The paper's Tables 2 and 3 on the embedded spurious-context benchmark, baseline vs W-OoD, per training seed.

    python benchmarks/refine_tables.py --seeds 0 1 2
    python benchmarks/refine_tables.py --demo runs/demo     # the finished runs of one `woodseg demo` (its seed)

Per training seed s: F_in (``train.seed=s``) and its mined hard-OoD list, then W-OoD (paper) fine-tuned from
it, exactly as ``benchmarks/paper_experiments.py`` makes them (its ``Seeds`` helper); each run then goes
through every stage after training with the demo config's settings: CAM seeds of train_aug and val, IR labels,
IRN, random-walk pseudo masks, their evaluation (Table 2: Seed, +CRF, Mask mIoU on split train), DeepLab on
the masks, prediction and evaluation on the held-out split val (Table 3). Runs live under ``--work``
(default ``benchmarks/runs-refine``: the seeds of train_aug need other ``cam.splits`` than the seed-only
experiments) and every stage resumes.

``--demo DIR`` reads the evaluations of a finished ``woodseg demo`` (``DIR/baseline``, ``DIR/wood-paper``: the
same runs and settings, the demo's training seed) instead of making runs.

Results: ``benchmarks/results/table2.md`` / ``.csv`` and ``table3.md`` / ``.csv`` (mean +- std over seeds, in %),
with the command and the machine.
"""

from __future__ import annotations

import argparse
import csv
import io
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from paper_experiments import Seeds  # noqa: E402

from woodseg.config import Config, load_config  # noqa: E402
from woodseg.fsutil import atomic_write_text  # noqa: E402
from woodseg.pipeline.demo import benchmark_spec, benchmark_tag  # noqa: E402
from woodseg.pipeline.stages import run_stages  # noqa: E402
from woodseg.pipeline.steps import derive, train_stage  # noqa: E402
from woodseg.report.refined import refined_results  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNS = ("baseline F_in (CAM)", "+ W-OoD (paper)")
TABLE2 = (("seed", "Seed"), ("crf", "+CRF"), ("mask", "Mask"))


def run_configs(seeds: Seeds, seed: int) -> dict[str, Config]:
    """F_in and W-OoD (paper) of one training seed, trained (or found trained)."""
    base = seeds.base
    f_in_cfg = seeds.baseline_cfg(seed)
    f_in = seeds.f_in(seed)
    root = seeds.root / "ood_pool"
    wood = derive(base, name="paper", out_dir=str(seeds.work / f"seed{seed}" / "paper"), demo=None,
                  wood={"variant": "paper"}, train={"seed": seed, "init_from": str(f_in)},
                  data={"ood_list": str(seeds.mined(seed)), "ood_root": str(root)})
    train_stage(wood, progress=seeds.progress)
    return {RUNS[0]: f_in_cfg, RUNS[1]: wood}


def refine_one(cfg: Config, seed: int, progress: bool) -> dict[str, Any]:
    """Every stage after training for one run; its Table 2 row and held-out segmentation."""
    from rich.console import Console

    run_stages(cfg, start="cam", stop="eval_predictions", progress=progress, console=Console(quiet=True),
               extra_protocol={"benchmark": benchmark_tag(benchmark_spec(cfg)), "train_seed": seed})
    return refined_results(Path(cfg.out_dir), cfg.data.seed_split, cfg.data.heldout_split)


def _stats(values: list[float]) -> tuple[float, float]:
    v = 100 * np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def _fmt(m: float, s: float, sign: bool = False) -> str:
    """mean +- std; one seed has no std and shows the value alone."""
    v = f"{m:+.1f}" if sign else f"{m:.1f}"
    return v if np.isnan(s) else f"{v} +- {s:.1f}"


def summarise(results: dict[str, list[dict[str, Any]]], command: str, base: Config, seeds: list[int],
              seconds: float) -> tuple[str, str, str, str]:
    """(table2.md, table2.csv, table3.md, table3.csv)."""
    first = next(iter(results.values()))[0]
    split = first["table2"]["split"]
    seg_names = list(first["segmentation"])
    head = [f"Benchmark: {benchmark_tag(benchmark_spec(base))}. Training seeds: {seeds}"
            f"{' (one seed: no std)' if len(seeds) == 1 else ''}. Mean +- std over seeds, mIoU in %; the per-seed "
            "values are in the CSV beside this file. Settings: the demo config (ResNet-10 from scratch, 112 px "
            "images; IRN on the classifier's backbone; DeepLab-v2 head on a dilated ResNet-10).", ""]
    foot = ["", f"Command: `{command}`", "",
            f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
            f"{'GPU ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU only'}; wall time of "
            f"this invocation {seconds / 60:.1f} min (finished runs are reused, not timed again).", ""]
    t2 = ["# Table 2 analogue: seed, seed + CRF and pseudo-mask mIoU on split " + repr(split), "", *head,
          "| run | Seed | +CRF | Mask | Mask - Seed |", "|---|---|---|---|---|"]
    t3 = ["# Table 3 analogue: segmentation mIoU on the held-out split (DeepLab trained on the pseudo masks)", "",
          *head, "| run | " + " | ".join(seg_names) + " |", "|---" * (len(seg_names) + 1) + "|"]
    rows2: list[dict[str, Any]] = []
    rows3: list[dict[str, Any]] = []
    for label, per_seed in results.items():
        cells = []
        for key, name in TABLE2:
            vals = [r["table2"][key]["miou"] for r in per_seed]
            m, s = _stats(vals)
            cells.append(_fmt(m, s))
            rows2.append({"run": label, "column": name, "mean": round(m, 3), "std": "" if np.isnan(s) else round(s, 3),
                          "values": " ".join(f"{100 * v:.2f}" for v in vals)})
        gain = [r["table2"]["mask"]["miou"] - r["table2"]["seed"]["miou"] for r in per_seed]
        m, s = _stats(gain)
        t2.append(f"| {label} | " + " | ".join(cells) + f" | {_fmt(m, s, sign=True)} |")
        seg_cells = []
        for name in seg_names:
            vals = [r["segmentation"][name]["miou"] for r in per_seed]
            m, s = _stats(vals)
            seg_cells.append(_fmt(m, s))
            rows3.append({"run": label, "column": name, "mean": round(m, 3), "std": "" if np.isnan(s) else round(s, 3),
                          "values": " ".join(f"{100 * v:.2f}" for v in vals)})
        t3.append(f"| {label} | " + " | ".join(seg_cells) + " |")
    t2 += ["", "Protocols (first run, first seed):", *(f"- {name}: {first['table2'][key]['protocol']}"
                                                     for key, name in TABLE2)]
    t3 += ["", "Protocols (first run, first seed):", *(f"- {n}: {first['segmentation'][n]['protocol']}"
                                                     for n in seg_names)]
    return "\n".join(t2 + foot), _csv(rows2), "\n".join(t3 + foot), _csv(rows3)


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--config", default="demo", help="base config (bundled name or YAML); default: demo")
    ap.add_argument("--work", type=Path, default=HERE / "runs-refine")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--demo", type=Path, default=None, help="read a finished `woodseg demo` folder instead")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from woodseg.data.benchmark import ensure_benchmark

    t0 = time.perf_counter()
    base = load_config(args.config, args.overrides)
    root = ensure_benchmark(benchmark_spec(base))
    base = derive(base, data={"root": str(root)})
    results: dict[str, list[dict[str, Any]]] = {label: [] for label in RUNS}
    if args.demo is not None:
        seed_list = [base.train.seed]
        for label, sub in zip(RUNS, ("baseline", "wood-paper"), strict=True):
            results[label].append(refined_results(args.demo / sub, base.data.seed_split, base.data.heldout_split))
    else:
        seed_list = list(args.seeds)
        seeds = Seeds(base, args.work, args.progress)
        for seed in seed_list:
            for label, cfg in run_configs(seeds, seed).items():
                print(f"[tables 2, 3] seed {seed}: {label}", flush=True)
                results[label].append(refine_one(cfg, seed, args.progress))
    command = "python benchmarks/refine_tables.py " + " ".join(sys.argv[1:] if argv is None else argv)
    t2, c2, t3, c3 = summarise(results, command, base, seed_list, time.perf_counter() - t0)
    for name, text in (("table2.md", t2), ("table2.csv", c2), ("table3.md", t3), ("table3.csv", c3)):
        atomic_write_text(args.results / name, text)
    print(t2, t3, sep="\n\n", flush=True)


if __name__ == "__main__":
    main()
