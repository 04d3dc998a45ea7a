"""Why W-OoD helps on one benchmark variant and hurts on another: diagnostics of the `variants` runs.

    python benchmarks/variant_causes.py --variants default small-strong-list --seeds 0

Reads the run folders ``benchmarks/paper_experiments.py variants`` made (``--work``, default
``benchmarks/runs``) and writes ``benchmarks/results/variant_causes.md`` and ``.csv``, per variant and run
(F_in, control, W-OoD paper/official, Table 5 (b)-(e), those that exist):

- with pixel masks (diagnosis only): seed mIoU, precision, recall and per-class IoU at the run's best
  threshold; where a present class's CAM mass lies: on the object, on the background (the context), on
  other objects; the mean best threshold;
- without masks (the safeguard's signals, :mod:`woodseg.evaluate.safeguard`): held-out classification
  mAP on ``val`` and the CAM peak share on the judged split;
- the OoD list: its make-up by pool truth (hard / easy / positive, scene) and F_in's mean max p(c) on it.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from woodseg.config import load_config
from woodseg.data.benchmark import read_pool_truth
from woodseg.data.build import load_dataset
from woodseg.data.images import load_mask
from woodseg.data.ood_list import read_ood_list
from woodseg.evaluate.safeguard import run_signals
from woodseg.fsutil import atomic_write_text
from woodseg.seeds.store import load_seed

HERE = Path(__file__).resolve().parent
RUNS = {"baseline": "F_in", "a": "control (a)", "paper": "W-OoD (paper)", "official": "W-OoD (official)",
        "t5b": "(b) OoD BCE only", "t5c": "(c) L_d only", "t5d": "(d) OoD BCE + L_d D_in",
        "t5e": "(e) OoD BCE + L_d D_ood"}


def cam_mass(run: Path, ds: Any, split: str) -> dict[str, float]:
    """Mean share of each present class's CAM mass on its object, on background, on other objects/void."""
    obj, bg, other = [], [], []
    for image_id in ds.ids(split):
        seed = load_seed(run / "seeds" / f"{image_id}.npz")
        gt = load_mask(ds.mask_path(image_id))
        present = ds.label(image_id) > 0
        for j, k in enumerate(seed.keys):
            if not present[int(k)]:
                continue
            cam = np.clip(seed.high_res[j].astype(np.float64), 0, None)
            total = cam.sum()
            if total <= 0:
                continue
            o, b = cam[gt == k + 1].sum() / total, cam[gt == 0].sum() / total
            obj.append(o)
            bg.append(b)
            other.append(1 - o - b)
    return {"mass_object": float(np.mean(obj)), "mass_background": float(np.mean(bg)),
            "mass_other": float(np.mean(other))}


def ood_makeup(list_path: Path, root: Path, f_in: Path) -> dict[str, Any]:
    """The list's kinds and scenes by pool truth, and F_in's max p(c) on it (how confusing it was to F_in)."""
    from woodseg.models.cam_net import load_classifier
    from woodseg.models.inference import predict_images

    truth = {t.path: t for t in read_pool_truth(root).values()}
    ood = read_ood_list(list_path, root / "ood_pool")
    entries = ood.ids
    model, names = load_classifier(f_in)
    pmax = predict_images(model, list(ood.paths), batch_size=32).probs[:, :len(names)].max(1)
    kinds: dict[str, int] = {}
    scenes: dict[str, int] = {}
    for e in entries:
        t = truth[e]
        kinds[t.kind] = kinds.get(t.kind, 0) + 1
        scenes[t.context] = scenes.get(t.context, 0) + 1
    return {"n": len(entries), "kinds": kinds, "scenes": dict(sorted(scenes.items())),
            "f_in_mean_max_p": round(float(pmax.mean()), 3), "f_in_share_p_ge_0.5": round(float((pmax >= 0.5).mean()), 3)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--work", type=Path, default=HERE / "runs")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    rows: list[dict[str, Any]] = []
    lines = ["# Why W-OoD helps or hurts: diagnostics per benchmark variant", "",
             "Seed split 'train' (pixel masks used only for the diagnosis columns); held-out mAP on 'val' "
             "(image labels only). CAM mass: mean over (image, present class) of the share of that class's "
             "map on its object / on background (context) / elsewhere. Peak share: share of the map's mass at "
             ">= the midpoint of its mean and max (no masks).", ""]
    for name in args.variants:
        for seed in args.seeds:
            folder = args.work / f"variant-{name}" / f"seed{seed}"
            cfg = load_config(str(folder / "baseline" / "classifier" / "config.yaml"))
            ds = load_dataset(cfg.data)
            root = Path(cfg.data.root)
            lines += [f"## {name}, training seed {seed}", ""]
            lists = sorted((folder / "ood").glob("*.txt"))
            for lp in lists:
                info = ood_makeup(lp, root, folder / "baseline" / "classifier" / "last.pt")
                lines.append(f"OoD list `{lp.name}`: {json.dumps(info)}")
            lines += ["", "| run | mIoU | P | R | thr | CAM on object | on background | elsewhere | peak share "
                      "| held-out mAP | per-class IoU |", "|---|---|---|---|---|---|---|---|---|---|---|"]
            for key, label in RUNS.items():
                run = folder / key
                if not (run / "eval" / "seeds.json").is_file():
                    continue
                best = json.loads((run / "eval" / "seeds.json").read_text())["train"]["best"]
                mass = cam_mass(run, ds, "train")
                sig = run_signals(run, ds, "train", "val")
                per = {c: round(100 * v, 1) for c, v in best["per_class_iou"].items() if v is not None}
                row = {"variant": name, "seed": seed, "run": label, "miou": 100 * best["miou"],
                       "precision": 100 * best["precision"], "recall": 100 * best["recall"],
                       "threshold": best["threshold"], **{k: 100 * v for k, v in mass.items()},
                       "peak_share": 100 * sig.peak_share, "heldout_map": 100 * sig.heldout_map,
                       "per_class_iou": json.dumps(per)}
                rows.append(row)
                lines.append(f"| {label} | {row['miou']:.1f} | {row['precision']:.1f} | {row['recall']:.1f} | "
                             f"{row['threshold']:.2f} | {row['mass_object']:.1f} | {row['mass_background']:.1f} | "
                             f"{row['mass_other']:.1f} | {row['peak_share']:.1f} | {row['heldout_map']:.1f} | "
                             f"{' '.join(f'{c[:5]} {v}' for c, v in per.items())} |")
                print(lines[-1], flush=True)
            lines.append("")
    lines += [f"Command: `python benchmarks/variant_causes.py {' '.join(sys.argv[1:] if argv is None else argv)}`", ""]
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    atomic_write_text(args.results / "variant_causes.md", "\n".join(lines))
    atomic_write_text(args.results / "variant_causes.csv", out.getvalue())


if __name__ == "__main__":
    main()
