"""Tune the random walk (steps, background plane) on run folders' masks, and measure its ceiling.

    python benchmarks/tune_walk.py runs/demo/baseline
    python benchmarks/tune_walk.py runs/demo/baseline --exp-times 3 4 5 6 8 --bg 0.25 0.3 0.35 0.4 0.45
    python benchmarks/tune_walk.py runs/demo/baseline runs/demo/wood-paper --edges irn truth --name walk_ceiling

Reads each run's saved config, seeds and trained IRN (``<run>/masks/config.yaml``, ``seeds/``, ``irn/last.pt``),
computes the boundary map of every image of the judged split once, walks each seed for every ``exp_times``
and judges the masks at every background plane against the split's pixel masks, in memory; the run
folders are not touched. The demo's walk settings are chosen this way on the **baseline** run only, never on
a W-OoD run.

``--edges truth`` walks over the boundaries of the ground-truth mask instead of IRN's (:func:`truth_edges`):
the best a boundary-driven walk can do with these seeds. Where that ceiling is below a target, better
boundaries (more IRN training, a bigger backbone) cannot reach it; the seeds must change.

Result: ``benchmarks/results/<name>.md`` (+ .csv) with the protocol, the command and the machine.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from woodseg.config import load_config
from woodseg.data.build import load_dataset
from woodseg.data.images import load_image, load_mask
from woodseg.data.transforms import hwc_to_tensor, normalize
from woodseg.evaluate.labels import class_scores, image_confusion
from woodseg.fsutil import atomic_write_text
from woodseg.models.irn import infer_edge
from woodseg.refine.inputs import load_checked_seed
from woodseg.refine.irn_stage import load_irn
from woodseg.refine.masks_stage import walk_params
from woodseg.refine.random_walk import propagate, walk_labels

HERE = Path(__file__).resolve().parent
EDGE_NAMES = {"irn": "IRN's boundary map (the run's `irn/last.pt`)",
              "truth": "the ground-truth mask's class boundaries on the stride-4 grid (an oracle: the walk's ceiling)"}
EDGES = tuple(EDGE_NAMES)


def truth_edges(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boundary map [h4, w4] from a pixel mask HxW: 1 on a stride-4 cell whose label differs from its right or
    lower neighbour's, else 0.

    A cell's label is the mask's at the cell's centre (the ignore label 255, VOC's boundary band, counts as a
    label of its own). One cell thick, so a small object keeps seed mass inside its outline.
    """
    h4, w4 = shape
    cells = mask[2::4, 2::4][:h4, :w4]
    cells = np.pad(cells, ((0, h4 - cells.shape[0]), (0, w4 - cells.shape[1])), mode="edge")
    edge = np.zeros(shape, dtype=np.float32)
    edge[:-1] = np.maximum(edge[:-1], cells[:-1] != cells[1:])
    edge[:, :-1] = np.maximum(edge[:, :-1], cells[:, :-1] != cells[:, 1:])
    return edge


def reference_lines(run: Path, split: str) -> list[str]:
    """The run's own seed (best threshold), seed + CRF and mask mIoU on ``split`` (%), where evaluated, and
    the seed's per-class IoU."""
    scores, per_class = {}, ""
    for key, name, pick in (("seed", "seeds.json", "best"), ("+CRF", "seeds-crf.json", "scores"),
                            ("mask", "masks.json", "scores")):
        path = run / "eval" / name
        result = json.loads(path.read_text()).get(split) if path.is_file() else None
        if result is not None:
            scores[key] = 100 * result[pick]["miou"]
            if key == "seed":
                per_class = ", ".join(f"{k} {100 * v:.1f}" for k, v in result[pick]["per_class_iou"].items())
    if not scores:
        return []
    line = "The run's own results on that split: " + ", ".join(f"{k} {v:.1f}" for k, v in scores.items()) + "."
    return ["", line + (f" Seed per-class IoU: {per_class}." if per_class else "")]


def walk_rows(run: Path, edges: list[str], exp_times: list[int], bgs: list[float],
              split: str | None) -> tuple[list[dict], str, str]:
    """One row per (edges, exp_times, background plane) of one run's walked masks on its judged split, the
    protocol line that says what was walked, and the split."""
    cfg = load_config(run / "masks" / "config.yaml")  # the config the masks stage ran with
    ds = load_dataset(cfg.data)
    split = split or cfg.data.seed_split
    ids = ds.check_split(split, need_masks=True)
    model = load_irn(run / "irn" / "last.pt", ds.class_names, torch.device("cpu"))[0] if "irn" in edges else None
    base = walk_params(cfg.walk)
    n = ds.num_classes + 1
    conf = {(s, e, b): np.zeros((n, n), dtype=np.int64) for s in edges for e in exp_times for b in bgs}
    for image_id in ids:
        image = load_image(ds.image_path(image_id))
        seed = load_checked_seed(run / "seeds", image_id, image.shape[:2])
        gt_path = ds.mask_path(image_id)
        gt = load_mask(gt_path)
        for source in edges:
            if source == "irn":
                edge = infer_edge(model, hwc_to_tensor(normalize(image)), pad_to=cfg.walk.edge_pad)
            else:
                edge = truth_edges(gt, seed.cam.shape[1:])
            for e in exp_times:
                walked = propagate(seed.cam.astype(np.float32), edge, replace(base, exp_times=e))
                for b in bgs:
                    pred = walk_labels(walked, seed.keys, image.shape[:2], b)
                    conf[(source, e, b)] += image_confusion(gt, pred, n, gt_path, run / "masks")
    names = ["background", *ds.class_names]
    rows = []
    for (source, e, b), c in conf.items():
        s = class_scores(c, names)
        rows.append({"run": str(run), "edges": source, "exp_times": e, "steps": 2 ** e, "bg_threshold": b,
                     "miou": 100 * s["miou"], "precision": 100 * s["precision"], "recall": 100 * s["recall"],
                     "per_class_iou": {k: 100 * v for k, v in s["per_class_iou"].items()}})
    protocol = (f"`{run}` (its seeds and IRN; config {cfg.name}): split '{split}' ({len(ids)} images), pixel "
                f"masks. Walk: beta {base.beta}, radius {base.radius}, seed power {base.seed_power}, edge_pad "
                f"{cfg.walk.edge_pad}.")
    return rows, protocol, split


def run_lines(run: Path, rows: list[dict], protocol: str, edges: list[str], exp_times: list[int],
              bgs: list[float], split: str) -> list[str]:
    """One run's section: its own seed / +CRF / mask for reference, then a steps x background table per edge source."""
    lines = [f"## {run.name}", "", protocol]
    lines += reference_lines(run, split)
    for source in edges:
        mine = [r for r in rows if r["edges"] == source]
        best = max(mine, key=lambda r: r["miou"])
        lines += ["", f"Edges: {EDGE_NAMES[source]}.", "",
                  "| exp_times (steps) | " + " | ".join(f"bg {b:.2f}" for b in bgs) + " |",
                  "|---|" + "---|" * len(bgs)]
        for e in exp_times:
            cells = [f"{next(r for r in mine if r['exp_times'] == e and r['bg_threshold'] == b)['miou']:.1f}"
                     for b in bgs]
            lines.append(f"| {e} ({2 ** e}) | " + " | ".join(cells) + " |")
        lines += ["", f"Best: exp_times {best['exp_times']} ({best['steps']} steps), background plane "
                  f"{best['bg_threshold']:.2f}: mIoU {best['miou']:.1f} (precision {best['precision']:.1f}, "
                  f"recall {best['recall']:.1f}); per-class IoU "
                  + ", ".join(f"{k} {v:.1f}" for k, v in best["per_class_iou"].items()) + "."]
    return lines + [""]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+",
                    help="run folders with masks/config.yaml, seeds/ and irn/last.pt (tune on the baseline)")
    ap.add_argument("--exp-times", type=int, nargs="+", default=[3, 4, 5, 6, 8])
    ap.add_argument("--bg", type=float, nargs="+", default=[0.25, 0.30, 0.35, 0.40, 0.45, 0.50])
    ap.add_argument("--edges", nargs="+", choices=EDGES, default=["irn"],
                    help="boundary maps to walk over: IRN's, and/or the ground truth's (the ceiling)")
    ap.add_argument("--split", default=None, help="judged split (default: each config's data.seed_split)")
    ap.add_argument("--name", default="walk_tuning", help="result file name under --results")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    command = "python benchmarks/tune_walk.py " + " ".join(sys.argv[1:] if argv is None else argv)
    t0 = time.perf_counter()
    lines = ["# Random walk of the seeds: settings and ceiling", "",
             "Masks = argmax over a constant background plane and the walked maps divided by their global "
             "maximum (IRN `step/make_sem_seg_labels.py`), no CRF. mIoU / precision / recall in %, per-class "
             "means incl. background.", ""]
    rows = []
    for run in args.runs:
        mine, protocol, split = walk_rows(run, args.edges, args.exp_times, args.bg, args.split)
        lines += run_lines(run, mine, protocol, args.edges, args.exp_times, args.bg, split)
        rows += mine
    lines += [f"Command: `{command}`", "",
              f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
              f"{(time.perf_counter() - t0) / 60:.1f} min.", ""]
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=[k for k in rows[0] if k != "per_class_iou"], extrasaction="ignore")
    w.writeheader()
    w.writerows([{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in rows])
    atomic_write_text(args.results / f"{args.name}.md", "\n".join(lines))
    atomic_write_text(args.results / f"{args.name}.csv", out.getvalue())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
