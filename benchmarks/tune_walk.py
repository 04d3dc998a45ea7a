"""Tune the random walk (steps, background plane) on one run's train-split masks, without touching its folder.

    python benchmarks/tune_walk.py runs/demo/baseline
    python benchmarks/tune_walk.py runs/demo/baseline --exp-times 3 4 5 6 8 --bg 0.25 0.3 0.35 0.4 0.45

Reads the run's saved config, seeds and trained IRN (``<run>/masks/config.yaml``, ``seeds/``, ``irn/last.pt``),
computes IRN's boundary map of every image of the judged split once, walks each seed for every
``exp_times`` and judges the masks at every background plane against the split's pixel masks, in memory.
The demo's walk settings are chosen this way on the **baseline** run only, never on a W-OoD run.

Result: ``benchmarks/results/walk_tuning.md`` (+ .csv) with the protocol, the command and the machine.
"""

from __future__ import annotations

import argparse
import csv
import io
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a run folder with masks/config.yaml, seeds/ and irn/last.pt (the baseline)")
    ap.add_argument("--exp-times", type=int, nargs="+", default=[3, 4, 5, 6, 8])
    ap.add_argument("--bg", type=float, nargs="+", default=[0.25, 0.30, 0.35, 0.40, 0.45, 0.50])
    ap.add_argument("--split", default=None, help="judged split (default: the config's data.seed_split)")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    command = "python benchmarks/tune_walk.py " + " ".join(sys.argv[1:] if argv is None else argv)
    cfg = load_config(args.run / "masks" / "config.yaml")  # the config the masks stage ran with
    ds = load_dataset(cfg.data)
    split = args.split or cfg.data.seed_split
    ids = ds.check_split(split, need_masks=True)
    model, _ = load_irn(args.run / "irn" / "last.pt", ds.class_names, torch.device("cpu"))
    base = walk_params(cfg.walk)
    n = ds.num_classes + 1
    conf = {(e, b): np.zeros((n, n), dtype=np.int64) for e in args.exp_times for b in args.bg}
    t0 = time.perf_counter()
    for image_id in ids:
        image = load_image(ds.image_path(image_id))
        seed = load_checked_seed(args.run / "seeds", image_id, image.shape[:2])
        edge = infer_edge(model, hwc_to_tensor(normalize(image)), pad_to=cfg.walk.edge_pad)
        gt_path = ds.mask_path(image_id)
        gt = load_mask(gt_path)
        for e in args.exp_times:
            walked = propagate(seed.cam.astype(np.float32), edge, replace(base, exp_times=e))
            for b in args.bg:
                pred = walk_labels(walked, seed.keys, image.shape[:2], b)
                conf[(e, b)] += image_confusion(gt, pred, n, gt_path, args.run / "masks")
    names = ["background", *ds.class_names]
    rows = []
    for (e, b), c in conf.items():
        s = class_scores(c, names)
        rows.append({"exp_times": e, "steps": 2 ** e, "bg_threshold": b, "miou": 100 * s["miou"],
                     "precision": 100 * s["precision"], "recall": 100 * s["recall"]})
    best = max(rows, key=lambda r: r["miou"])
    lines = ["# Random-walk settings on the baseline's masks", "",
             f"Run: `{args.run}` (its seeds and IRN; config {cfg.name}). Split '{split}' ({len(ids)} images), "
             f"pixel masks. Walk: beta {base.beta}, radius {base.radius}, seed power {base.seed_power}, "
             f"edge_pad {cfg.walk.edge_pad}; masks = argmax over the background plane and the walked maps "
             "(IRN `step/make_sem_seg_labels.py`), no CRF. mIoU / precision / recall in %, per-class means "
             "incl. background.", "",
             "| exp_times (steps) | " + " | ".join(f"bg {b:.2f}" for b in args.bg) + " |",
             "|---|" + "---|" * len(args.bg)]
    for e in args.exp_times:
        cells = [f"{next(r for r in rows if r['exp_times'] == e and r['bg_threshold'] == b)['miou']:.1f}"
                 for b in args.bg]
        lines.append(f"| {e} ({2 ** e}) | " + " | ".join(cells) + " |")
    lines += ["", f"Best: exp_times {best['exp_times']} ({best['steps']} steps), background plane "
              f"{best['bg_threshold']:.2f}: mIoU {best['miou']:.1f} (precision {best['precision']:.1f}, recall "
              f"{best['recall']:.1f}).", "", f"Command: `{command}`", "",
              f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
              f"{(time.perf_counter() - t0) / 60:.1f} min.", ""]
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows([{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in rows])
    atomic_write_text(args.results / "walk_tuning.md", "\n".join(lines))
    atomic_write_text(args.results / "walk_tuning.csv", out.getvalue())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
