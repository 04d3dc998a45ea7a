"""Write the demo's seed table, review figures and wall time to benchmarks/results/demo.md.

The README quotes the demo's numbers from this file, so they always come from a run:

    woodseg demo --full               # writes runs/demo/summary.json
    python benchmarks/demo_table.py   # turns it into benchmarks/results/demo.md

``--run`` times the two commands a user runs, in a fresh run folder: ``woodseg demo`` (the classifiers,
seeds and safeguard), then ``woodseg demo --full`` on the same folder (refinement and segmentation).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from woodseg.evaluate.seeds import describe
from woodseg.pipeline.demo import REFINE_STAGES

HERE = Path(__file__).resolve().parent


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def demo_markdown(summary: dict, *, command: str,
                  walls: dict[str, tuple[float, dict[str, float]]] | None = None) -> str:
    """The demo's numbers as Markdown: one seed-table row per run and judged split, then the review."""
    runs = summary["runs"]
    baseline = next(iter(runs.values()))
    lines = ["# `woodseg demo`: seed quality, one run", "", f"Benchmark: {summary['benchmark']}.", ""]
    for split in ("train", "val"):
        if split in baseline:
            lines.append(f"Protocol ({split}): {describe(baseline[split]['protocol'], baseline[split]['threshold'])}.")
    lines += ["",
              "| run | split | threshold | mIoU | precision | recall | F1 |", "|---|---|---|---|---|---|---|"]
    for split in ("train", "val"):
        for label, run in runs.items():
            if split not in run:
                continue
            row, base = run[split], baseline[split]
            cells = [_pct(row[k]) for k in ("miou", "precision", "recall", "f1")]
            if run is not baseline:
                cells = [f"{c} ({100 * (row[k] - base[k]):+.1f})"
                         for c, k in zip(cells, ("miou", "precision", "recall", "f1"), strict=True)]
            lines.append(f"| {label} | {split} | {row['threshold']:.2f} | " + " | ".join(cells) + " |")
    per_class = {label: run["train"].get("per_class_iou") for label, run in runs.items() if "train" in run}
    if all(per_class.values()):
        names = list(next(iter(per_class.values())))
        lines += ["", "Per-class seed IoU on split train (the paper's Fig. 6):", "",
                  "| run | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        lines += [f"| {label} | " + " | ".join(_pct(v[n]) for n in names) + " |" for label, v in per_class.items()]
    refined = summary.get("refined") or {}
    if refined:
        lines += ["", "Refinement and segmentation (the paper's Tables 2 and 3; mIoU):", "",
                  "| run | Seed (train) | +CRF (train) | Mask (train) | segmentation (val) | segmentation (val, CRF) |",
                  "|---|---|---|---|---|---|"]
        for label, r in refined.items():
            t2, seg = r["table2"], r.get("segmentation", {})
            cells = [_pct(t2[k]["miou"]) for k in ("seed", "crf", "mask")]
            cells += [_pct(seg[k]["miou"]) if k in seg else "-" for k in ("val", "val-crf")]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        first = next(iter(refined.values()))
        lines += [""] + [f"Protocol ({name}): {part['protocol']}." for name, part in
                         [("+CRF", first["table2"]["crf"]), ("Mask", first["table2"]["mask"])]
                         + [(f"segmentation {k}", v) for k, v in first.get("segmentation", {}).items()]]
        lines += mask_per_class(summary, list(refined))
    t = summary["review"]["total"]
    lines += ["", f"Review (simulated reviewer, reads the benchmark's truth): {t['reviewed']} candidates looked at, "
              f"{t['rejected']} hidden positives rejected (r = {t['r']:.2f}), {t['kept']} kept.", ""]
    lines += timing_lines(summary.get("timings_s", {}), walls or {})
    lines += ["", f"Command: `{command}`", "", f"Machine: {summary.get('machine', platform.machine())}."]
    return "\n".join(lines) + "\n"


def mask_per_class(summary: dict, labels: list[str]) -> list[str]:
    """Per-class IoU and precision of the seeds and the pseudo masks on split train: where the walk gains or
    loses (read from each run's ``eval/masks.json``; runs whose folder is gone are left out)."""
    lines: list[str] = []
    for label in labels:
        run = summary["runs"][label]
        path = Path(run["out_dir"]) / "eval" / "masks.json"
        if "train" not in run or not path.is_file():
            continue
        mask = json.loads(path.read_text())["train"]["scores"]
        seed = run["train"]
        if not lines:
            names = list(seed["per_class_iou"])
            lines = ["", "Per-class IoU / precision on split train, seeds -> pseudo masks (each run's "
                     "`eval/seeds.json` and `eval/masks.json`):", "",
                     "| run | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        cells = [f"{_pct(seed['per_class_iou'][c])} -> {_pct(mask['per_class_iou'][c])} / "
                 f"{_pct(seed['per_class_precision'][c])} -> {_pct(mask['per_class_precision'][c])}"
                 for c in seed["per_class_iou"]]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _refines(step: str) -> bool:
    """A refinement or segmentation step (``"ir_labels baseline"``): what only ``woodseg demo --full`` runs."""
    return step.split(" ")[0] in REFINE_STAGES


def timing_lines(timings: dict[str, float], walls: dict[str, tuple[float, dict[str, float]]]) -> list[str]:
    """Wall times of the timed commands with their steps, or (untimed) the steps of the summary's run."""
    if walls:
        lines = []
        for what, (wall, steps) in walls.items():
            shown = ", ".join(f"{k} {v:.0f} s" for k, v in steps.items() if k != "total" and v >= 0.5)
            lines.append(f"Wall time of `{what}`: {wall / 60:.1f} min ({wall:.0f} s, interpreter start-up included). "
                         f"Steps: {shown}.")
        lines.append("The benchmark was cached (its first generation is not included); `--full` ran on the folder "
                     "the first command left, so it reused F_in, the OoD review, the fine-tunings and the seeds.")
        return lines
    if not timings:
        return []
    total = sum(v for k, v in timings.items() if k != "total")
    lines = [f"Time in the demo's steps: {total / 60:.1f} min ({total:.0f} s; interpreter start-up and "
             "a first generation of the benchmark not included)."]
    if any(_refines(k) for k in timings):
        seeds_part = sum(v for k, v in timings.items() if not _refines(k) and k not in ("report", "total"))
        lines.append(f"Of which the classifiers, seeds and safeguard (what `woodseg demo` without `--full` runs): "
                     f"{seeds_part / 60:.1f} min ({seeds_part:.0f} s).")
    return [*lines, "Steps: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items() if k != "total") + "."]


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "woodseg", *argv], check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--summary", type=Path, default=Path("runs/demo/summary.json"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "demo.md")
    ap.add_argument("--run", action="store_true",
                    help="time `woodseg demo` and then `woodseg demo --full` in a fresh run folder first")
    args = ap.parse_args()
    walls: dict[str, tuple[float, dict[str, float]]] = {}
    command = "woodseg demo --full && python benchmarks/demo_table.py"
    if args.run:
        folder = args.summary.parent
        if folder.exists():
            sys.exit(f"error: {folder} exists; a timed run needs a fresh run folder. "
                     "Fix: remove it, or pass --summary NEW_FOLDER/summary.json")
        for what, extra in (("woodseg demo", []), ("woodseg demo --full", ["--full"])):
            wall = timed(["demo", "-q", *extra, f"out_dir={folder}"])
            steps = json.loads(args.summary.read_text()).get("timings_s", {})
            walls[what] = (wall, steps)
        command = "python benchmarks/demo_table.py --run"
    summary = json.loads(args.summary.read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(demo_markdown(summary, command=command, walls=walls))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
