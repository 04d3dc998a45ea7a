"""The paper's experiments on the embedded spurious-context benchmark, with several training seeds.

    python benchmarks/paper_experiments.py table1  --seeds 0 1 2     # baseline vs W-OoD (paper, official)
    python benchmarks/paper_experiments.py table5  --seeds 0 1 2     # loss ablations (a)-(f)
    python benchmarks/paper_experiments.py table4  --seeds 0 1 2     # K sweep, clustering by predicted class
    python benchmarks/paper_experiments.py fig5a   --seeds 0 1 2     # |D_ood| from 0 to all
    python benchmarks/paper_experiments.py fig5b   --seeds 0 1 2     # fixed labelling budget |D_in| + |D_ood|
    python benchmarks/paper_experiments.py tableA2 --seeds 0 1 2     # tau x lambda grid
    python benchmarks/paper_experiments.py causes  --seeds 0 1 2     # lambda's scale, centre refresh, OoD batch share
    python benchmarks/paper_experiments.py all     --seeds 0 1 2
    python benchmarks/paper_experiments.py variants --variants default small-strong-list --seeds 0
                                     # per benchmark variant: Table 1 (F_in, control = Table 5 (a), W-OoD paper
                                     # = Table 5 (f)) and Table 5 (b)-(e), with the safeguard's mask-free
                                     # signals per run; --official adds W-OoD (official)

Per training seed s, every experiment shares one F_in (the baseline, ``train.seed=s``) and one hard-OoD
list mined from the candidate pool with it (p(c) >= 0.5, simulated reviewer, 40 per class). All W-OoD
runs fine-tune that F_in with the demo config's schedule. Runs live under ``--work`` (default
``benchmarks/runs``) and are skipped when finished, so the script resumes after an interruption and
experiments reuse each other's runs (row (f) of Table 5 is Table 1's W-OoD run).

Results: ``benchmarks/results/<experiment>.md`` and ``.csv`` with mean +- std over seeds of the seed
mIoU, precision, recall and F1 (%) on the judged split, the exact command, the benchmark version and the
machine. The numbers in the README are copied from those files. The ``variants`` experiment writes one
pair per variant (``results/variants/<name>.md``, ``.csv`` with one row per run and seed, the mask-free
signals included) and rebuilds ``results/variants.md``/``.csv`` from every variant file of the current
benchmark version, under a lock, so invocations on different variants can run at the same time.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from woodseg.config import Config, load_config
from woodseg.data.benchmark import CLASSES, BenchmarkSpec, read_pool_truth
from woodseg.data.benchmark.spec import BENCHMARK_VERSION
from woodseg.data.benchmark.variants import VARIANTS, Variant, context_only_list, get_variant
from woodseg.data.ood_list import read_ood_list
from woodseg.errors import TrainingError
from woodseg.evaluate.safeguard import OOD_P, PEAK_FRACTION, RunSignals, compare, ood_residual, run_signals
from woodseg.fsutil import atomic_write_json, atomic_write_text
from woodseg.models.cam_net import load_classifier
from woodseg.ood.resolution import config_scoring_long_side
from woodseg.pipeline.demo import benchmark_spec, benchmark_tag
from woodseg.pipeline.steps import derive, mine_hard_ood, ood_subset, seed_stage, train_stage

HERE = Path(__file__).resolve().parent
METRICS = ("miou", "precision", "recall", "f1")


@dataclass
class Run:
    """One classifier to train and judge: a label and its config overrides relative to the W-OoD base."""

    label: str
    key: str  # folder name, shared between experiments that mean the same run
    overrides: dict[str, Any] = field(default_factory=dict)
    baseline_itself: bool = False  # F_in, not a fine-tuned run
    ood_subset: int | None = None  # |D_ood| (seeded random subset of the mined list); None = all
    din_subset: int | None = None  # |D_in| for the labelling-budget experiment (own F_in on the subset)


def table1() -> list[Run]:
    return [
        Run("baseline F_in (CAM)", "baseline", baseline_itself=True),
        Run("F_in + same fine-tuning, no OoD (Table 5 a)", "a"),
        Run("+ W-OoD (paper)", "paper"),
        Run("+ W-OoD (official)", "official", {"wood": {"variant": "official"}}),
    ]


def table5() -> list[Run]:
    rows = {"a": (False, False, False), "b": (True, False, False), "c": (False, True, True),
            "d": (True, True, False), "e": (True, False, True), "f": (True, True, True)}
    out = []
    for row, (cls_ood, d_in, d_ood) in rows.items():
        if row == "a":
            out.append(Run("(a) L_cls D_in", "a"))
            continue
        key = "paper" if row == "f" else f"t5{row}"
        name = {"b": "(b) + L_cls D_ood", "c": "(c) + L_d D_in, D_ood", "d": "(d) + L_cls D_ood, L_d D_in",
                "e": "(e) + L_cls D_ood, L_d D_ood", "f": "(f) all (W-OoD)"}[row]
        out.append(Run(name, key, {"wood": {"use_cls_ood": cls_ood, "use_d_in": d_in, "use_d_ood": d_ood}}))
    return out


def table4() -> list[Run]:
    out = [Run("predicted classes (K <= C = 6)", "t4pred", {"wood": {"clustering": "predicted_class"}})]
    for k in (20, 50, 70):
        out.append(Run(f"K-means K = {k}", "paper" if k == 50 else f"t4k{k}", {"wood": {"K": k}}))
    return out


def fig5a() -> list[Run]:
    out = [Run("|D_ood| = 0", "a")]
    for n in (6, 96):
        out.append(Run(f"|D_ood| = {n}", f"f5a{n}", ood_subset=n))
    out.append(Run("|D_ood| = all (240)", "paper"))
    return out


def fig5b() -> list[Run]:
    out = [Run("|D_in| 900 + |D_ood| 0", "a")]
    for n_ood in (120,):
        out.append(Run(f"|D_in| {900 - n_ood} + |D_ood| {n_ood}", f"f5b{n_ood}", ood_subset=n_ood,
                       din_subset=900 - n_ood))
    return out


def table_a2() -> list[Run]:
    out = []
    for tau, lams in ((0.1, (0.014,)), (0.2, (0.007, 0.014)), (0.3, (0.0035,))):
        for lam in lams:
            key = "paper" if (tau, lam) == (0.2, 0.007) else f"a2t{tau}l{lam}"
            out.append(Run(f"tau {int(tau * 100)}%, lambda {lam}", key, {"wood": {"tau": tau, "lam": lam}}))
    return out


def causes() -> list[Run]:
    """The knobs the gain may hinge on at this scale: lambda's scale, centre refresh, the OoD share of each step."""
    return [
        Run("W-OoD (paper): lambda 0.007, centres once from F_in, OoD batch 32", "paper"),
        Run("lambda x 10 (0.07)", "clam10", {"wood": {"lam": 0.07}}),
        Run("lambda x 30 (0.21)", "clam30", {"wood": {"lam": 0.21}}),
        Run("centres refreshed every epoch", "crefresh", {"wood": {"refresh_every": 1}}),
        Run("OoD batch 64 (twice the in-distribution batch)", "cood64", {"wood": {"ood_batch_size": 64}}),
    ]


TABLE5_KEYS = {"a": "a", "b": "t5b", "c": "t5c", "d": "t5d", "e": "t5e", "f": "paper"}


def lambda_sweep() -> list[Run]:
    """Where L_d starts to act: lambda from the paper's 0.007 up to 100x, all terms on; and L_d without the OoD BCE."""
    out = [Run("lambda 0.007 (paper)", "paper")]
    for lam, key in ((0.07, "clam10"), (0.2, "clam30"), (0.7, "clam100")):
        out.append(Run(f"lambda {lam:g}", key, {"wood": {"lam": lam}}))
    out.append(Run("lambda 0.2, L_d only (no OoD BCE)", "t5c-lam30",
                   {"wood": {"lam": 0.2, "use_cls_ood": False, "use_d_in": True, "use_d_ood": True}}))
    return out


def variants(official: bool = False, rows: str = "abcdef") -> list[Run]:
    """Per benchmark variant: F_in, then Table 5 (a)-(f) (or the ``rows`` asked for), where (a) is Table 1's
    control and (f) Table 1's W-OoD (paper) run (the same keys, so the runs are shared); W-OoD (official) only
    when asked for."""
    t1 = {r.key: r for r in table1()}
    names = {"a": "(a) control: same fine-tuning, no OoD", "paper": "(f) + W-OoD (paper): all terms"}
    keep = {TABLE5_KEYS[r] for r in rows}
    out = [replace(t1["baseline"], label="F_in (baseline CAM)"),
           *(replace(r, label=names.get(r.key, r.label)) for r in table5() if r.key in keep)]
    return [*out, t1["official"]] if official else out


EXPERIMENTS: dict[str, tuple[str, Callable[[], list[Run]]]] = {  # in order of importance (`all` runs this order)
    "table1": ("Table 1: seed quality, baseline vs W-OoD", table1),
    "table5": ("Table 5: loss ablations", table5),
    "fig5a": ("Fig. 5a: amount of hard OoD (|D_in| = 900)", fig5a),
    "table4": ("Table 4: constructing P_ood", table4),
    "tableA2": ("Table A2: tau x lambda (lambda scaled as 1/tau, as the paper's grid)", table_a2),
    "fig5b": ("Fig. 5b: fixed labelling budget |D_in| + |D_ood| = 900", fig5b),
    "causes": ("What the gain depends on: lambda's scale, centre refresh and OoD batch share", causes),
    "lambda": ("Where L_d acts: lambda from 0.007 to 0.7 (all terms), and L_d alone at 0.2", lambda_sweep),
    "variants": ("Benchmark variants: Table 1 and Table 5 (a)-(f) per variant", variants),
}
NOT_IN_ALL = ("variants", "lambda")


class Seeds:
    """Per training seed: F_in and its mined hard-OoD list (made once, shared by every experiment)."""

    def __init__(self, base: Config, work: Path, progress: bool, variant: Variant | None = None,
                 tag: str = "") -> None:
        self.base, self.work, self.progress = base, work, progress
        self.variant, self.tag = variant, tag
        self.root = Path(base.data.root)
        self.truth = read_pool_truth(self.root)

    def baseline_cfg(self, seed: int, din: int | None = None) -> Config:
        b = self.base
        suffix = "" if din is None else f"-din{din}"
        over: dict[str, Any] = {"name": f"baseline{suffix}", "out_dir": str(self.work / f"seed{seed}" / f"baseline{suffix}"),
                                "demo": None,
                                "wood": {"variant": "none"}, "train": {"epochs": b.demo.baseline_epochs, "lr": b.demo.baseline_lr,
                                                                       "seed": seed, "init_from": None}}
        if din is not None:
            over["data"] = {"train_split": self.din_split(seed, din)}
        return derive(b, **over)

    def din_split(self, seed: int, n: int) -> str:
        """A seeded random subset of train_aug that keeps the judged train split inside it."""
        from woodseg.data.voc import read_voc

        ds = read_voc(self.root)
        name = f"train_aug_{n}_s{seed}"
        path = self.root / "ImageSets" / "Segmentation" / f"{name}.txt"
        if not path.exists():
            keep = set(ds.ids("train"))
            rest = [i for i in ds.ids("train_aug") if i not in keep]
            pick = np.random.default_rng(seed).choice(len(rest), size=n - len(keep), replace=False)
            ids = sorted(keep | {rest[i] for i in pick})
            atomic_write_text(path, "".join(f"{i}\n" for i in ids))
        return name

    def f_in(self, seed: int, din: int | None = None) -> Path:
        cfg = self.baseline_cfg(seed, din)
        return train_stage(cfg, progress=self.progress)

    def mined(self, seed: int) -> Path:
        """The hard-OoD list of this seed: mined with F_in (paper Sec. 3.1; ``unreviewed``: review skipped), or
        the variant's ready-made list."""
        pool_root = self.root / "ood_pool"
        if self.variant is not None and self.variant.ood_source == "context_only":
            n = self.base.demo.ood_per_class * len(CLASSES)
            return context_only_list(self.root, self.work / f"seed{seed}" / "ood" / "context_only.txt", n, seed)
        pool = read_ood_list(pool_root / "pool.txt", pool_root)

        def is_positive(entry: str, class_name: str) -> bool:
            if self.variant is not None and self.variant.ood_source == "unreviewed":
                return False  # no review: every candidate is kept, hidden positives too
            return class_name in self.truth[Path(entry).stem].classes

        f_in = self.f_in(seed)
        return mine_hard_ood(f_in, pool, pool_root, self.work / f"seed{seed}" / "ood",
                             is_positive=is_positive, threshold=self.base.demo.ood_threshold,
                             per_class=self.base.demo.ood_per_class,
                             long_side=config_scoring_long_side(self.baseline_cfg(seed), f_in),
                             batch_size=self.base.train.batch_size, progress=self.progress).ood_list


def list_composition(seeds: Seeds, seed: int) -> str:
    """What the seed's OoD list holds by the pool's hidden truth: hidden positives, hard and easy images."""
    ids = read_ood_list(seeds.mined(seed), seeds.root / "ood_pool").ids
    kinds = [seeds.truth[Path(i).stem].kind for i in ids]
    return f"{len(ids)} images, " + ", ".join(f"{kinds.count(k)} {k}" for k in ("positive", "hard", "easy"))


def run_dir(run: Run, seed: int, seeds: Seeds) -> Path:
    """The folder of one run (``classifier/``, ``seeds/``, ``eval/``)."""
    if run.baseline_itself:
        return Path(seeds.baseline_cfg(seed).out_dir)
    return seeds.work / f"seed{seed}" / run.key


def run_one(run: Run, seed: int, seeds: Seeds, eval_splits: list[str]) -> dict[str, Any]:
    base, work = seeds.base, seeds.work
    if run.baseline_itself:
        cfg = seeds.baseline_cfg(seed)
        seeds.f_in(seed)
    else:
        f_in = seeds.f_in(seed, run.din_subset)
        over = json.loads(json.dumps(run.overrides))
        over.setdefault("wood", {})
        over.setdefault("train", {})
        over["train"].update({"seed": seed, "init_from": str(f_in)})
        if run.key == "a" or run.key.startswith("a_"):
            over["wood"]["variant"] = "none"
        else:
            over["wood"].setdefault("variant", "paper")
            mined = seeds.mined(seed)
            root = seeds.root / "ood_pool"
            if run.ood_subset is not None:
                mined = ood_subset(mined, root, run.ood_subset, seed, work / f"seed{seed}" / f"ood_{run.ood_subset}.txt")
                n = len(read_ood_list(mined, root))
                over["wood"]["K"] = min(over["wood"].get("K", base.wood.K), n)
            over["data"] = {"ood_list": str(mined), "ood_root": str(root)}
        if run.din_subset is not None:
            over.setdefault("data", {})["train_split"] = seeds.din_split(seed, run.din_subset)
        cfg = derive(base, name=run.key, out_dir=str(run_dir(run, seed, seeds)), demo=None, **over)
        train_stage(cfg, progress=seeds.progress)
    cfg = derive(cfg, cam={"splits": eval_splits}, data={"heldout_split": eval_splits[1] if len(eval_splits) > 1 else None})
    res = seed_stage(cfg, progress=seeds.progress, quiet_table=True,
                     extra_protocol={"benchmark": seeds.tag, "train_seed": seed})
    return {s: res[s]["best"] for s in eval_splits} | {"protocol": res[eval_splits[0]]["protocol"]}


def variant_spec(base: Config, variant: Variant | None) -> BenchmarkSpec:
    """The benchmark spec of a run: the demo's (seed, scale) and, when given, the variant's overrides."""
    if variant is None:
        return benchmark_spec(base)
    return variant.spec(seed=base.demo.benchmark_seed, scale=base.demo.benchmark_scale)


def variant_tag(spec: BenchmarkSpec, variant: Variant | None) -> str:
    tag = benchmark_tag(spec)
    return tag if variant is None else f"{tag}, variant '{variant.name}' (OoD list: {variant.ood_source})"


def summarise(name: str, runs: list[Run], results: dict[str, list[dict[str, Any]]], splits: list[str],
              command: str, tag: str, seeds: list[int], seconds: float, title: str | None = None,
              extra: str = "", sections: list[str] | None = None) -> tuple[str, str]:
    title = title or EXPERIMENTS[name][0]
    first = next(r for rs in results.values() for r in rs if "diverged" not in r)
    proto = first["protocol"]
    lines = [f"# {title}", "",
             f"Benchmark: {tag}. Training seeds: {seeds}. "
             f"Mean +- std over seeds, in %.", "", *([extra, ""] if extra else []),
             f"Protocol: seeds = {proto['method']} (scales {proto['scales']}, flip {proto['flip']}), CRF off, "
             f"background = constant threshold plane; threshold = the best mIoU on split "
             f"'{splits[0]}' per run{', applied unchanged to split ' + repr(splits[1]) if len(splits) > 1 else ''}; "
             "P and R are per-class means incl. background; F1 = 2PR/(P+R) of the means.", ""]
    csv_rows = []
    for split in splits:
        lines += [f"## split '{split}'", "", "| run | mIoU | precision | recall | F1 | threshold |", "|---|---|---|---|---|---|"]
        for run in runs:
            diverged = [r["diverged"] for r in results[run.label] if "diverged" in r]
            rows = [r[split] for r in results[run.label] if "diverged" not in r]
            label = run.label.replace("|", "\\|")  # |D_ood| must not split the Markdown cell
            if diverged:
                lines.append(f"| {label} | diverged ({len(diverged)} of {len(diverged) + len(rows)} seeds: "
                             f"{diverged[0].rsplit(': ', 1)[-1]}) | | | | |")
                continue
            cells = []
            for m in METRICS:
                v = 100 * np.array([r[m] for r in rows])
                cells.append(f"{v.mean():.1f} +- {v.std(ddof=1) if len(v) > 1 else 0.0:.1f}")
                csv_rows.append({"experiment": name, "benchmark": tag, "split": split, "run": run.label, "metric": m,
                                 "mean": round(float(v.mean()), 3),
                                 "std": round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 3),
                                 "values": " ".join(f"{x:.2f}" for x in v)})
            thr = ", ".join(f"{r['threshold']:.2f}" for r in rows)
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {thr} |")
        lines.append("")
    for section in sections or []:
        lines += [section, ""]
    lines += ["Per-run values (one per seed) are in the CSV beside this file.", "",
              f"Command: `{command}`", "",
              f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
              f"{'GPU ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU only'}; "
              f"wall time of this invocation {seconds / 60:.1f} min (runs already finished, by an earlier invocation or "
              "another experiment, are reused, not timed again).", ""]
    out_csv = io.StringIO()
    w = csv.DictWriter(out_csv, fieldnames=list(csv_rows[0]))
    w.writeheader()
    w.writerows(csv_rows)
    return "\n".join(lines), out_csv.getvalue()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", choices=[*EXPERIMENTS, "all"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--config", default="demo", help="base config (bundled name or YAML); default: demo")
    ap.add_argument("--work", type=Path, default=HERE / "runs")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--heldout", action="store_true", help="also judge the held-out split (slower)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--variants", nargs="+", default=["default", "small-strong-list"], choices=list(VARIANTS),
                    help="benchmark variants of the `variants` experiment")
    ap.add_argument("--rows", default="abcdef",
                    help="`variants`: the Table 5 rows to run (a = control, f = W-OoD paper); default all")
    ap.add_argument("--official", action="store_true",
                    help="`variants`: also train W-OoD (official) per variant and seed (one more run each)")
    ap.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python benchmarks/paper_experiments.py " + " ".join(sys.argv[1:] if argv is None else argv)
    base = load_config(args.config, args.overrides)
    if args.experiment == "variants":
        run_variants(base, args, command)
        return
    seeds = make_seeds(base, args.work, args.progress, None)
    names = [n for n in EXPERIMENTS if n not in NOT_IN_ALL] if args.experiment == "all" else [args.experiment]
    for name in names:
        t0 = time.perf_counter()
        runs = EXPERIMENTS[name][1]()
        splits = ["train", "val"] if (args.heldout or name == "table1") else ["train"]
        results = run_all(name, runs, seeds, args.seeds, splits)
        md, table = summarise(name, runs, results, splits, command, seeds.tag, args.seeds, time.perf_counter() - t0)
        atomic_write_text(args.results / f"{name}.md", md)
        atomic_write_text(args.results / f"{name}.csv", table)
        print(md, flush=True)


def make_seeds(base: Config, work: Path, progress: bool, variant: Variant | None) -> Seeds:
    """Generate (or reuse) the benchmark of ``variant`` (None: the demo's) and the per-seed F_in/OoD holder."""
    from woodseg.data.benchmark import ensure_benchmark

    spec = variant_spec(base, variant)
    root = ensure_benchmark(spec)
    return Seeds(derive(base, data={"root": str(root)}), work, progress, variant, variant_tag(spec, variant))


def run_all(name: str, runs: list[Run], seeds: Seeds, seed_list: list[int],
            splits: list[str]) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {r.label: [] for r in runs}
    for seed in seed_list:
        for run in runs:
            print(f"[{name}] seed {seed}: {run.label}", flush=True)
            try:
                results[run.label].append(run_one(run, seed, seeds, splits))
            except TrainingError as exc:  # a diverged run is a result (e.g. a lambda too large), not a crash
                print(f"[{name}] seed {seed}: {run.label} diverged: {exc}", flush=True)
                results[run.label].append({"diverged": str(exc).split(";")[0]})
    return results


SIGNAL_HELDOUT = "val"
"""The benchmark's held-out split: the held-out mAP reads its image labels only (no masks, no seeds)."""

SIGNALS = ("heldout_map", "peak_share", "context_pc", "ood_residual")
SIGNAL_NAMES = {"heldout_map": f"held-out mAP ('{SIGNAL_HELDOUT}', image labels)",
                "peak_share": "CAM peak share (seed split)",
                "context_pc": "context p(c) on held-out context-only images",
                "ood_residual": f"OoD residual (its OoD list at p(c) >= {OOD_P})"}


def trains_on_ood(run: Run) -> bool:
    """Whether the run trains L_cls on the seed's whole OoD list (the OoD residual is defined for it)."""
    if run.baseline_itself or run.key == "a" or run.key.startswith("a_") or run.ood_subset is not None:
        return False
    return bool(run.overrides.get("wood", {}).get("use_cls_ood", True))


def context_pc(checkpoint: Path, root: Path, exclude: set[str], batch_size: int = 32) -> tuple[float, int]:
    """How much a classifier still fires on a class's context alone: the mean, over the pool's hard OoD
    images (a class context, no class object) not in ``exclude`` (the seed's OoD list, which W-OoD trained
    on), of its p(c) for the classes whose context the image's scene is; and the number of images."""
    from woodseg.models.inference import predict_images

    hard = [t for t in read_pool_truth(root).values() if t.kind == "hard" and t.path not in exclude]
    if not hard:
        return float("nan"), 0
    model, names = load_classifier(checkpoint)
    probs = predict_images(model, [root / "ood_pool" / t.path for t in hard], batch_size=batch_size).probs
    per_image = [float(np.mean([probs[i, names.index(c)] for c in t.context_classes])) for i, t in enumerate(hard)]
    return float(np.mean(per_image)), len(hard)


def mask_free_signals(run: Run, seed: int, seeds: Seeds, seed_split: str) -> dict[str, Any]:
    """The safeguard's signals of one finished run (:func:`woodseg.evaluate.safeguard.run_signals`: held-out
    mAP on ``val``, CAM peak share on the seed split) and :func:`context_pc`, as fractions.

    Cached in the run's ``eval/signals.json`` with a record of what they were made from (the checkpoint, the
    seeds' index, the OoD list, the pool truth), so a resumed invocation or another variant experiment
    reuses them and a retrained run recomputes them.
    """
    from woodseg.data.build import load_dataset
    from woodseg.runtime.fingerprint import read_record, stage_record

    folder = run_dir(run, seed, seeds)
    ckpt = folder / "classifier" / "last.pt"
    ood_list = seeds.mined(seed)
    index = folder / "seeds" / "index.json"
    record = stage_record("signals", {"seed_split": seed_split, "heldout_split": SIGNAL_HELDOUT,
                                      "peak_fraction": PEAK_FRACTION, "context": "hard pool images not in the list"},
                          {"checkpoint": ckpt, "seeds": index if index.is_file() else None, "ood_list": ood_list,
                           "pool_truth": seeds.root / "ood_pool" / "truth.csv"})
    cache = folder / "eval" / "signals.json"
    old = read_record(cache)
    ood = read_ood_list(ood_list, seeds.root / "ood_pool")
    batch = seeds.base.train.batch_size
    if old is not None and old.get("record", {}).get("fingerprint") == record["fingerprint"]:
        out = old["signals"]
        if "ood_residual" in out:
            return out
        # a cache from before the OoD residual: add it alone (one forward pass over the list)
        if trains_on_ood(run):
            model, names = load_classifier(ckpt)
            residual, suspects = ood_residual(model, ood, len(names), batch_size=batch)
        else:
            residual, suspects = None, ()
        out |= {"ood_residual": residual, "n_ood": len(ood.ids) if residual is not None else 0,
                "ood_suspects": list(suspects)}
    else:
        ds = load_dataset(seeds.base.data)
        sig = run_signals(folder, ds, seed_split, SIGNAL_HELDOUT, ood=ood if trains_on_ood(run) else None,
                          batch_size=batch)
        ctx, n_ctx = context_pc(ckpt, seeds.root, set(ood.ids), batch)
        out = asdict(sig) | {"context_pc": None if n_ctx == 0 else ctx, "n_context": n_ctx,
                             "ood_suspects": list(sig.ood_suspects)}  # as JSON reads it back
    atomic_write_json(cache, {"record": record, "signals": out})
    return out


def _signals_of(d: dict[str, Any]) -> RunSignals:
    return RunSignals(d["heldout_map"], d["heldout_ap"], d["peak_share"], d["n_heldout"], d["n_pairs"],
                      d["ood_residual"], d["n_ood"], tuple(d["ood_suspects"]))


def per_run_rows(variant: Variant, tag: str, spec_hash: str, seed: int, runs: list[Run],
                 results: dict[str, dict[str, Any]], signals: dict[str, dict[str, Any]],
                 splits: list[str]) -> list[dict[str, Any]]:
    """One CSV row per (run, split) of one training seed: seed metrics and the run's signals, in %.

    ``safeguard_warn``: whether :data:`woodseg.evaluate.safeguard.RULE` fires for this run against F_in
    (empty for F_in itself)."""
    f_in = _signals_of(signals["baseline"])
    rows = []
    for run in runs:
        sig = signals[run.key]
        warn = "" if run.baseline_itself else int(
            compare({"W-OoD": _signals_of(sig), "F_in": f_in}, "W-OoD", ["F_in"])["warn"])
        for split in splits:
            best = results[run.key][split]
            rows.append({"experiment": "variants", "variant": variant.name, "benchmark_version": BENCHMARK_VERSION,
                         "spec_hash": spec_hash, "ood_source": variant.ood_source, "benchmark": tag, "seed": seed,
                         "key": run.key, "run": run.label, "split": split,
                         **{m: round(100 * float(best[m]), 3) for m in METRICS},
                         "threshold": round(float(best["threshold"]), 3),
                         **{k: "" if sig[k] is None else round(100 * float(sig[k]), 3) for k in SIGNALS},
                         "n_heldout": sig["n_heldout"], "n_pairs": sig["n_pairs"], "n_context": sig["n_context"],
                         "safeguard_warn": warn})
    return rows


def signals_section(runs: list[Run], rows: list[dict[str, Any]], split: str) -> str:
    """The Markdown table of the mask-free signals, mean +- std over seeds (%)."""
    lines = ["## Mask-free signals (no pixel masks: `woodseg.evaluate.safeguard`)", "",
             f"Held-out mAP: mean AP of p(c) on split '{SIGNAL_HELDOUT}' (image labels only). CAM peak share: share "
             f"of a present class's CAM mass in its most-activated region (>= mean + {PEAK_FRACTION} (max - mean)), "
             f"over split '{split}'. Context p(c): mean p(c) of the scene's classes on the pool's context-only "
             "(hard OoD) images that are not in the seed's OoD list. OoD residual: share of the seed's OoD list the "
             f"run's classifier still scores p(c) >= {OOD_P} for some class (runs that train L_cls on the list). "
             "Safeguard warns: seeds on which the shipped rule (`safeguard.RULE`: CAM peak share below F_in's, or "
             "OoD residual above its bound) fires for the run.", "",
             "| run | " + " | ".join(SIGNAL_NAMES[k] for k in SIGNALS) + " | safeguard warns |",
             "|---|" + "---|" * (len(SIGNALS) + 1)]
    for run in runs:
        mine = [r for r in rows if r["key"] == run.key and r["split"] == split]
        cells = []
        for k in SIGNALS:
            v = np.array([r[k] for r in mine if r[k] != ""], dtype=float)
            cells.append("-" if not len(v) else f"{v.mean():.1f} +- {v.std(ddof=1) if len(v) > 1 else 0.0:.1f}")
        warns = "-" if run.baseline_itself else ", ".join(str(r["seed"]) for r in mine if r["safeguard_warn"]) or "none"
        lines.append(f"| {run.label} | " + " | ".join(cells) + f" | {warns} |")
    return "\n".join(lines)


def rows_csv(rows: list[dict[str, Any]]) -> str:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=fields, restval="")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (``flock`` on the directory itself: no lock file to leave behind)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def rebuild_variants(results: Path) -> list[str]:
    """Rebuild ``variants.md``/``.csv`` from every ``variants/<name>.md``/``.csv`` of this benchmark version.

    Runs under :func:`locked` on the folder: two invocations finishing together each write their own
    variant files first and then rebuild in turn, so the last rebuild holds both. Files of another benchmark
    version (or from before per-run rows) are left out and named. Returns the variants included.
    """
    folder = results / "variants"
    with locked(folder):
        mds, rows, included, skipped = [], [], [], []
        for name in VARIANTS:  # the registry's order, whichever invocation made each file
            md_path, csv_path = folder / f"{name}.md", folder / f"{name}.csv"
            if not (md_path.is_file() and csv_path.is_file()):
                continue
            mine = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
            if not mine or any(r.get("benchmark_version") != BENCHMARK_VERSION for r in mine):
                skipped.append(name)
                continue
            included.append(name)
            rows += mine
            md = md_path.read_text(encoding="utf-8").replace("\n## ", "\n### ")  # demote: one level per variant
            mds.append(md.replace("# Variant", "## Variant", 1))
        head = [f"# Benchmark variants (benchmark v{BENCHMARK_VERSION}): Table 1 and Table 5 (a)-(f) per variant", "",
                "Rebuilt from `variants/<name>.md` and `.csv` (one row per run, seed and split) by "
                "`benchmarks/paper_experiments.py variants`.", ""]
        if skipped:
            head += [f"Left out (files of another benchmark version or format; rerun them): {', '.join(skipped)}.", ""]
        head += overview(rows) if rows else ["No variant of this benchmark version has results yet.", ""]
        atomic_write_text(results / "variants.md", "\n".join(head) + "\n" + "\n".join(mds))
        atomic_write_text(results / "variants.csv", rows_csv(rows) if rows else "")
    return included


def overview(rows: list[dict[str, Any]]) -> list[str]:
    """Seed mIoU (mean over seeds) per variant and run, on the first split of each variant."""
    keys: list[str] = []
    labels: dict[str, str] = {}
    for r in rows:
        if r["key"] not in keys:
            keys.append(r["key"])
            labels[r["key"]] = r["run"]
    lines = ["Seed mIoU (%), mean over the training seeds, on each variant's judged split:", "",
             "| variant | seeds | " + " | ".join(labels[k] for k in keys) + " |", "|---|---|" + "---|" * len(keys)]
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name]
        split = mine[0]["split"]
        mine = [r for r in mine if r["split"] == split]
        cells = []
        for k in keys:
            v = [float(r["miou"]) for r in mine if r["key"] == k]
            cells.append(f"{np.mean(v):.1f}" if v else "-")
        seeds = sorted({int(r["seed"]) for r in mine})
        lines.append(f"| {name} | {' '.join(map(str, seeds))} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def run_variants(base: Config, args: argparse.Namespace, command: str) -> None:
    """The `variants` experiment: Table 1 and Table 5 (a)-(f) on each variant, with the mask-free signals.

    Each variant's tables go to ``variants/<name>.md`` and ``.csv`` (rewritten after every training seed,
    so an interrupted invocation leaves what it finished); ``variants.md``/``.csv`` are then rebuilt from
    every variant file there (:func:`rebuild_variants`). Variants can be run by separate invocations at
    the same time: each writes only its own variants' files and its own run folders.
    """
    splits = ["train", "val"] if args.heldout else ["train"]
    folder = args.results / "variants"
    runs = variants(official=args.official, rows=args.rows)
    for name in args.variants:
        variant = get_variant(name)
        t0 = time.perf_counter()
        seeds = make_seeds(base, args.work / f"variant-{name}", args.progress, variant)
        spec = variant_spec(base, variant)
        results: dict[str, list[dict[str, Any]]] = {r.label: [] for r in runs}
        rows: list[dict[str, Any]] = []
        done: list[int] = []
        lists: list[str] = []
        for seed in args.seeds:
            by_key = {}
            for run in runs:
                print(f"[variants/{name}] seed {seed}: {run.label}", flush=True)
                by_key[run.key] = run_one(run, seed, seeds, splits)
                results[run.label].append(by_key[run.key])
            signals = {run.key: mask_free_signals(run, seed, seeds, splits[0]) for run in runs}
            rows += per_run_rows(variant, seeds.tag, spec.hash(), seed, runs, by_key, signals, splits)
            done.append(seed)
            lists.append(f"seed {seed}: {list_composition(seeds, seed)}")
            extra = (f"Benchmark version {BENCHMARK_VERSION} (cache folder {spec.folder_name()}). Variant '{name}': "
                     f"{variant.description}. Spec overrides {json.dumps(variant.overrides)}; OoD list: "
                     f"{variant.ood_source}. Rows (a)-(f) are Table 5's; (a) is Table 1's control and (f) its "
                     "W-OoD (paper) run. The OoD list by the pool's truth: " + "; ".join(lists) + ".")
            md, _ = summarise("variants", runs, results, splits, command, seeds.tag, done, time.perf_counter() - t0,
                              title=f"Variant '{name}' (benchmark v{BENCHMARK_VERSION})", extra=extra,
                              sections=[signals_section(runs, rows, splits[0])])
            atomic_write_text(folder / f"{name}.md", md)
            atomic_write_text(folder / f"{name}.csv", rows_csv(rows))
            rebuild_variants(args.results)
        print(md, flush=True)


if __name__ == "__main__":
    main()
