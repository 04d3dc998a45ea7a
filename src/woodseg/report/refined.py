"""From seeds to masks to a segmentation network, per run: the paper's Table 2 row (Seed, +CRF, Mask) and
Table 3 (segmentation mIoU on the held-out split), read from a run folder's evaluation files, and the mask
overlays (image, ground truth, then per run its seed, pseudo mask and prediction).

The numbers come from ``eval/seeds.json`` (best threshold on the seed split), ``eval/seeds-crf.json``,
``eval/masks.json`` and ``eval/predictions-<split>[-crf].json``; each keeps its protocol line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from woodseg.data.dataset import LabelledImageSet
from woodseg.data.images import load_mask
from woodseg.errors import DataError
from woodseg.evaluate.labels import describe_labels
from woodseg.evaluate.metrics import confusion, scores
from woodseg.evaluate.seeds import describe, seed_label_map
from woodseg.report.figures import DPI, colour_labels, label_legend, png_bytes
from woodseg.report.overlays import ImageScore, choose, image_and_mask
from woodseg.seeds.store import load_seed

SCORES = ("miou", "precision", "recall", "f1")


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path.name} does not exist", path=path,
                        fix="run the refinement stages for this run first (`woodseg run --from ir_labels`)")
    return json.loads(path.read_text(encoding="utf-8"))


def _cell(scores_: dict[str, Any], protocol_line: str) -> dict[str, Any]:
    return {**{k: float(scores_[k]) for k in SCORES}, "protocol": protocol_line}


def refined_results(folder: Path, seed_split: str, heldout_split: str | None) -> dict[str, Any]:
    """One run's Table 2 row on ``seed_split`` and its segmentation scores on ``heldout_split``.

    {"table2": {"split", "seed", "crf", "mask"}, "segmentation": {"<split>[-crf]": cell}}; a cell holds
    mIoU, precision, recall, F1 in [0, 1] and its protocol line.
    """
    ev = Path(folder) / "eval"
    seeds = _read(ev / "seeds.json")
    if seed_split not in seeds:
        raise DataError(f"seeds.json has no split '{seed_split}'", path=ev / "seeds.json",
                        fix="run `woodseg eval` with this config")
    s = seeds[seed_split]
    crf = _read(ev / "seeds-crf.json")[seed_split]
    mask = _read(ev / "masks.json")[seed_split]
    row = {"split": seed_split,
           "seed": _cell(s["best"], describe(s["protocol"], float(s["best"]["threshold"]))),
           "crf": _cell(crf["scores"], describe_labels(crf["protocol"])),
           "mask": _cell(mask["scores"], describe_labels(mask["protocol"]))}
    seg: dict[str, Any] = {}
    if heldout_split:
        for name in (heldout_split, f"{heldout_split}-crf"):
            path = ev / f"predictions-{name}.json"
            if path.is_file():
                res = json.loads(path.read_text(encoding="utf-8"))[heldout_split]
                seg[name] = _cell(res["scores"], describe_labels(res["protocol"]))
        if not seg:
            raise DataError(f"no evaluated predictions of split '{heldout_split}'", path=ev,
                            fix="run `woodseg predict` and `woodseg eval_predictions` for this run")
    return {"table2": row, "segmentation": seg}


# ------------------------------------------------------------------------------------------------ overlays


def _labels(folder: Path, image_id: str, shape: tuple[int, int], what: str) -> np.ndarray:
    path = folder / f"{image_id}.png"
    if not path.is_file():
        raise DataError(f"{what} of image '{image_id}' does not exist", path=path,
                        fix="run the stage that makes it for this split (it resumes)")
    lab = load_mask(path)
    if lab.shape != shape:
        raise DataError(f"{what} is {lab.shape}, the image's mask {shape}", path=path,
                        fix="remake it for this dataset (--restart)")
    return lab


def _seed_labels(folder: Path, image_id: str, shape: tuple[int, int], threshold: float) -> np.ndarray:
    path = folder / "seeds" / f"{image_id}.npz"
    if not path.is_file():
        raise DataError(f"seed of image '{image_id}' does not exist", path=path,
                        fix="add the split to cam.splits and run `woodseg cam` (it resumes)")
    seed = load_seed(path)
    if tuple(seed.high_res.shape[1:]) != shape:
        raise DataError(f"seed is {tuple(seed.high_res.shape[1:])}, the image's mask {shape}", path=path,
                        fix="remake the seeds for this dataset (`woodseg cam --restart`)")
    return seed_label_map(seed.high_res.astype(np.float32), seed.keys, threshold)


def product_rows(ds: LabelledImageSet, split: str, runs: dict[str, Path], thresholds: dict[str, float],
                 image_ids: Sequence[str]) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """image id -> run -> {"seed", "mask", "prediction"} label maps of ``split``'s images."""
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for image_id in image_ids:
        shape = load_mask(ds.mask_path(image_id)).shape
        out[image_id] = {name: {"seed": _seed_labels(folder, image_id, shape, thresholds[name]),
                                "mask": _labels(folder / "masks", image_id, shape, "pseudo mask"),
                                "prediction": _labels(folder / "predictions" / split, image_id, shape,
                                                      "prediction")}
                         for name, folder in runs.items()}
    return out


def choose_mask_overlays(ds: LabelledImageSet, split: str, runs: dict[str, Path], baseline: str, other: str,
                         n: int) -> list[tuple[ImageScore, str]]:
    """The images where ``other``'s prediction gained (then lost) the most image mIoU over ``baseline``'s."""
    num_labels = ds.num_classes + 1
    scored = []
    for image_id in ds.check_split(split, need_masks=True):
        gt = load_mask(ds.mask_path(image_id))
        scored.append(ImageScore(image_id, {
            name: scores(confusion(gt, _labels(folder / "predictions" / split, image_id, gt.shape, "prediction"),
                                   num_labels)).miou
            for name, folder in runs.items() if name in (baseline, other)}))
    return choose(scored, baseline, other, n)


def mask_overlay_row(image: np.ndarray, gt: np.ndarray, products: dict[str, dict[str, np.ndarray]],
                     label_names: Sequence[str], image_id: str) -> bytes:
    """Image, ground truth, then per run its seed, pseudo mask and prediction in VOC colours."""
    h, w = gt.shape
    tiles = [("image " + image_id, image), ("ground truth", colour_labels(gt))]
    for run, maps in products.items():
        tiles += [(f"{run}: {what}", colour_labels(maps[what])) for what in ("seed", "mask", "prediction")]
    th = 1.8
    tw = th * min(max(w / h, 0.5), 2.0)
    gap, left, top, bottom = 0.08, 0.08, 0.5, 0.42
    width = left + len(tiles) * (tw + gap)
    height = top + th + bottom
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    for k, (title, tile) in enumerate(tiles):
        ax = fig.add_axes(((left + k * (tw + gap)) / width, bottom / height, tw / width, th / height))
        ax.imshow(tile, interpolation="nearest", aspect="auto")
        ax.set_title(title, fontsize=7 if len(title) > 24 else 8)
        ax.set_xticks([])
        ax.set_yticks([])
    label_legend(fig, [gt, *(a for m in products.values() for a in m.values())], label_names)
    return png_bytes(fig)


def render_mask_overlays(ds: LabelledImageSet, split: str, runs: dict[str, Path], thresholds: dict[str, float],
                         chosen: Sequence[tuple[ImageScore, str]]) -> list[dict[str, Any]]:
    """One figure per chosen image: {"id", "kind", "classes", "miou", "png"}."""
    labels = ["background", *ds.class_names]
    maps = product_rows(ds, split, runs, thresholds, [s.image_id for s, _ in chosen])
    out = []
    for score, kind in chosen:
        image_id = score.image_id
        image, gt = image_and_mask(ds, image_id)
        out.append({"id": image_id, "kind": kind, "miou": dict(score.miou),
                    "classes": [ds.class_names[i] for i in np.flatnonzero(ds.label(image_id) > 0)],
                    "png": mask_overlay_row(image, gt, maps[image_id], labels, image_id)})
    return out
