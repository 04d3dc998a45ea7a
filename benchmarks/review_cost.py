"""Cheaper hard-OoD review, measured on the benchmark's hidden truth (issue: "Beyond the paper").

The paper's reviewer looks at candidates in p(c) order and pays n / (1 - r) looks for n hard OoD images,
where r is the share of hidden positives among them. woodseg's review app can demote candidates that a
flag marks as likely positives: ``compactness`` (the class's CAM is one compact, object-like blob) or
``stability`` (p(c) stays high under flip and rescale). This script measures, per training seed:

* the flag's quality as a positive detector (precision and recall among the p(c) >= 0.5 candidates);
* the positive rate r and the looks needed for n = 40 hard OoD per class, in p(c) order vs demoted order;
* the W-OoD seed mIoU when training on the list each review order produces (equal n per class).

    python benchmarks/review_cost.py --seeds 0 1 2

F_in and the p(c)-order run are shared with ``paper_experiments.py`` (same ``--work`` folder).
Writes ``benchmarks/results/review_cost.md`` and ``.csv``.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from paper_experiments import HERE, Run, Seeds, run_one  # noqa: E402

from woodseg.config import load_config  # noqa: E402
from woodseg.data.benchmark import ensure_benchmark  # noqa: E402
from woodseg.data.ood_list import read_ood_list, write_ood_list  # noqa: E402
from woodseg.fsutil import atomic_write_text  # noqa: E402
from woodseg.models.cam_net import load_classifier  # noqa: E402
from woodseg.ood.candidates import select_candidates  # noqa: E402
from woodseg.ood.export import kept_entries  # noqa: E402
from woodseg.ood.ordering import order_candidates  # noqa: E402
from woodseg.ood.resolution import config_scoring_long_side  # noqa: E402
from woodseg.ood.review.store import ReviewSettings  # noqa: E402
from woodseg.ood.scoring import score_pool_full  # noqa: E402
from woodseg.ood.simulate import effort_for_n, simulate_from_candidates  # noqa: E402
from woodseg.pipeline.demo import benchmark_spec, benchmark_tag  # noqa: E402
from woodseg.pipeline.steps import derive  # noqa: E402

SWEEP = (0.5, 0.7, 0.8, 0.9, 0.95)
ORDERS = [("p(c) order (paper)", "p", None), ("demote compactness flag", "demote", "compactness"),
          ("demote stability flag", "demote", "stability")]


def measure_seed(seeds: Seeds, seed: int, n: int, flag_threshold: float) -> dict[str, Any]:
    root = seeds.root
    pool_root = root / "ood_pool"
    pool = read_ood_list(pool_root / "pool.txt", pool_root)
    f_in = seeds.f_in(seed)
    model, names = load_classifier(f_in)
    scores = score_pool_full(model, pool, names, long_side=config_scoring_long_side(seeds.base, f_in),
                             flags=("compactness", "stability"), threshold=seeds.base.demo.ood_threshold)
    cands = select_candidates(scores.scores, pool.ids, names, seeds.base.demo.ood_threshold,
                              compactness=scores.compactness, stability=scores.stability)

    def positive(entry: str, cls: str) -> bool:
        return cls in seeds.truth[Path(entry).stem].classes

    def effort(mode: str, flag: str | None, th: float) -> tuple[int, int]:
        """(looks, rejected) to keep n hard OoD per class, summed over classes, in this review order."""
        looks = rejected = 0
        for cls, lst in cands.items():
            o = effort_for_n([positive(c.entry, cls) for c in order_candidates(lst, mode, flag, th)], n, cls)
            looks += o.reviewed
            rejected += o.rejected
        return looks, rejected

    def detection(flag: str, th: float) -> dict[str, float]:
        """The flag at threshold ``th`` as a detector of hidden positives among the candidates."""
        flagged = [(getattr(c, flag) >= th, positive(c.entry, cls)) for cls, lst in cands.items() for c in lst]
        tp = sum(f and p for f, p in flagged)
        n_flagged = sum(f for f, _ in flagged)
        return {"precision": tp / max(n_flagged, 1), "recall": tp / max(sum(p for _, p in flagged), 1),
                "flagged": n_flagged}

    out: dict[str, Any] = {"orders": {}, "flags": {}, "sweep": {}}
    for flag in ("compactness", "stability"):
        out["flags"][flag] = detection(flag, flag_threshold)
        for th in SWEEP:  # the trade-off at other flag thresholds (no training)
            looks, rejected = effort("demote", flag, th)
            d = detection(flag, th)
            out["sweep"][(flag, th)] = {"looks": looks, "r": rejected / max(looks, 1),
                                        "precision": d["precision"], "recall": d["recall"]}
    for label, mode, flag in ORDERS:
        looks, rejected = effort(mode, flag, flag_threshold)
        out["orders"][label] = {"looks": looks, "rejected": rejected, "r": rejected / max(looks, 1)}
    # the kept list the best flag's order produces, through the review store (as a person would)
    best = min(ORDERS[1:], key=lambda o: out["orders"][o[0]]["looks"])
    db = seeds.work / f"seed{seed}" / f"review_{best[2]}.sqlite3"
    db.unlink(missing_ok=True)
    store, _ = simulate_from_candidates(cands, positive, db, root=pool_root, target_n=n,
                                        settings=ReviewSettings(target_n=n, order=best[1], flag=best[2],
                                                                flag_threshold=flag_threshold))
    entries, _ = kept_entries(store)
    store.close()
    list_path = seeds.work / f"seed{seed}" / f"ood_{best[2]}.txt"
    write_ood_list(list_path, entries)
    out["best_flag"] = best[2]
    out["list"] = list_path
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--config", default="demo")
    ap.add_argument("--work", type=Path, default=HERE / "runs")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--flag-threshold", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    base = load_config(args.config)
    base = derive(base, data={"root": str(ensure_benchmark(benchmark_spec(base)))})
    seeds = Seeds(base, args.work, progress=False)
    n = base.demo.ood_per_class
    rows: list[dict[str, Any]] = []
    per_seed = []
    for seed in args.seeds:
        m = measure_seed(seeds, seed, n, args.flag_threshold)
        plain = run_one(Run("W-OoD, p(c) order", "paper"), seed, seeds, ["train"])["train"]
        flagged_run = Run(f"W-OoD, {m['best_flag']} order", f"paper_{m['best_flag']}",
                          {"data": {"ood_list": str(m["list"])}})
        flagged = _run_with_list(flagged_run, seed, seeds, m["list"])
        base_row = run_one(Run("baseline", "baseline", baseline_itself=True), seed, seeds, ["train"])["train"]
        per_seed.append((m, plain, flagged, base_row))
    lines = ["# Cheaper hard-OoD review (measured on the benchmark's hidden truth)", "",
             f"Benchmark: {benchmark_tag(benchmark_spec(base))}; seeds {args.seeds}; n = {n} hard OoD per class; "
             f"candidates: p(c) >= {base.demo.ood_threshold} under F_in; flag threshold {args.flag_threshold}. "
             "Simulated reviewer (reads the truth). Mean +- std over seeds.", "",
             "## Review effort", "", "| review order | looks for n per class (all classes) | positive rate r |",
             "|---|---|---|"]
    for label, _, _ in ORDERS:
        looks = np.array([m["orders"][label]["looks"] for m, *_ in per_seed], float)
        r = np.array([m["orders"][label]["r"] for m, *_ in per_seed], float)
        lines.append(f"| {label} | {looks.mean():.1f} +- {_sd(looks):.1f} | {r.mean():.3f} +- {_sd(r):.3f} |")
        rows.append({"what": "effort", "order": label, "looks_mean": looks.mean(), "looks_sd": _sd(looks),
                     "r_mean": r.mean(), "r_sd": _sd(r)})
    lines += ["", "## Flags as positive detectors (among the candidates)", "",
              "| flag | precision | recall | flagged |", "|---|---|---|---|"]
    for flag in ("compactness", "stability"):
        p = np.array([m["flags"][flag]["precision"] for m, *_ in per_seed])
        rc = np.array([m["flags"][flag]["recall"] for m, *_ in per_seed])
        fl = np.array([m["flags"][flag]["flagged"] for m, *_ in per_seed], float)
        lines.append(f"| {flag} | {p.mean():.3f} +- {_sd(p):.3f} | {rc.mean():.3f} +- {_sd(rc):.3f} | {fl.mean():.0f} |")
        rows.append({"what": "flag", "order": flag, "precision": p.mean(), "recall": rc.mean()})
    lines += ["", "## Flag threshold sweep (demote order; looks and r for n per class, flag precision / recall)", "",
              "| flag | threshold | looks | r | flag precision | flag recall |", "|---|---|---|---|---|---|"]
    for flag in ("compactness", "stability"):
        for th in SWEEP:
            vals = {k: np.array([m["sweep"][(flag, th)][k] for m, *_ in per_seed], float)
                    for k in ("looks", "r", "precision", "recall")}
            lines.append(f"| {flag} | {th} | {vals['looks'].mean():.1f} +- {_sd(vals['looks']):.1f} | "
                         f"{vals['r'].mean():.3f} | {vals['precision'].mean():.3f} | {vals['recall'].mean():.3f} |")
            rows.append({"what": "sweep", "order": f"{flag}@{th}", "looks_mean": vals["looks"].mean(),
                         "r_mean": vals["r"].mean(), "precision": vals["precision"].mean(),
                         "recall": vals["recall"].mean()})
    lines += ["", "## Usefulness: W-OoD seed quality on split 'train' (paper variant)", "",
              "| hard-OoD list from | mIoU | precision | recall | F1 |", "|---|---|---|---|---|"]
    for label, idx in (("baseline F_in (no OoD)", 3), ("p(c) order", 1), ("demoted flag order", 2)):
        cells = []
        for metric in ("miou", "precision", "recall", "f1"):
            v = 100 * np.array([row[idx][metric] for row in per_seed])
            cells.append(f"{v.mean():.1f} +- {_sd(v):.1f}")
            rows.append({"what": "seed", "order": label, "metric": metric, "mean": v.mean(), "sd": _sd(v)})
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Protocol: CAM seeds, scales 1, 0.5, 1.5, 2 + flip, CRF off, threshold = best mIoU on split "
              "'train' per run.", "", f"Command: `python benchmarks/review_cost.py {' '.join(sys.argv[1:])}`",
              "", f"Wall time {(time.perf_counter() - t0) / 60:.1f} min (shared runs counted where first made).", ""]
    md = "\n".join(lines)
    buf = io.StringIO()
    keys = sorted({k for r in rows for k in r})
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(args.results / "review_cost.md", md)
    atomic_write_text(args.results / "review_cost.csv", buf.getvalue())
    print(md)


def _run_with_list(run: Run, seed: int, seeds: Seeds, ood_list: Path) -> dict[str, Any]:
    """Like run_one, but with this hard-OoD list instead of the p(c)-order one."""
    from woodseg.pipeline.steps import seed_stage, train_stage

    f_in = seeds.f_in(seed)
    cfg = derive(seeds.base, name=run.key, out_dir=str(seeds.work / f"seed{seed}" / run.key),
                 train={"seed": seed, "init_from": str(f_in)}, wood={"variant": "paper"},
                 data={"ood_list": str(ood_list), "ood_root": str(seeds.root / "ood_pool")},
                 cam={"splits": ["train"]})
    cfg = derive(cfg, data={"heldout_split": None})
    train_stage(cfg, progress=False)
    return seed_stage(cfg, progress=False, quiet_table=True)["train"]["best"]


def _sd(v: np.ndarray) -> float:
    return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


if __name__ == "__main__":
    main()
