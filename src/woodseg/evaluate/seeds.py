"""Seed (localization map) evaluation, IRN protocol: constant background plane, threshold sweep.

A pixel is foreground iff its highest class score exceeds the threshold (argmax ties go to background,
the first plane), labelled with that class. The whole curve over thresholds is kept; the reported row is
the best mIoU on the judged split (how WOOD and AdvCAM report), and a held-out split is judged at the
threshold chosen on the seed split, so no threshold is picked on the data it is reported on twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from woodseg.data.dataset import LabelledImageSet
from woodseg.data.images import exif_orientation, load_mask
from woodseg.errors import DataError
from woodseg.evaluate.metrics import scores
from woodseg.seeds.store import load_seed, read_index


def seed_label_map(high_res: np.ndarray, keys: np.ndarray, threshold: float) -> np.ndarray:
    """VOC label map of one seed at one threshold (0 background, key + 1 for a class)."""
    if len(keys) == 0:
        return np.zeros(high_res.shape[1:], dtype=np.uint8)
    m = high_res.max(0)
    lab = (keys[high_res.argmax(0)] + 1).astype(np.uint8)
    # compared in the map's precision, as IRN's step/eval_cam.py pads float32 maps with the threshold:
    # a score equal to float32(t) is a tie, and ties are background
    return np.where(m > m.dtype.type(threshold), lab, 0).astype(np.uint8)


def sweep_confusions(gt: np.ndarray, high_res: np.ndarray, keys: np.ndarray, thresholds: np.ndarray,
                     num_labels: int) -> np.ndarray:
    """Confusions [T, L, L] of one image at every threshold (ascending) in one pass over the pixels.

    Each pixel is foreground for exactly the thresholds below its max score, so we histogram pixels by
    (number of thresholds below their score, gt, class) and take cumulative sums over thresholds.
    """
    t = len(thresholds)
    valid = gt != 255
    g = gt[valid].astype(np.int64)
    if len(keys):
        m = high_res.max(0)[valid]
        lab = (keys[high_res.argmax(0)] + 1)[valid].astype(np.int64)
        # number of thresholds < m, in the seed's precision as seed_label_map compares (ties: background)
        below = np.searchsorted(np.asarray(thresholds).astype(m.dtype), m, side="left")
    else:
        lab = np.zeros_like(g)
        below = np.zeros_like(g)
    if g.size and (g.max() >= num_labels):
        raise ValueError(f"mask value {g.max()} is outside 0..{num_labels - 1}")
    hist = np.bincount((below * num_labels + g) * num_labels + lab, minlength=(t + 1) * num_labels**2)
    hist = hist.reshape(t + 1, num_labels, num_labels)
    # fg at threshold j: pixels with below > j; background: below <= j.
    fg = np.cumsum(hist[::-1], axis=0)[::-1][1:]  # fg[j] = sum_{b > j} hist[b]
    bg_rows = np.cumsum(hist.sum(2), axis=0)[:t]  # bg[j][gt] = sum_{b <= j} pixels
    out = fg.copy()
    out[:, :, 0] += bg_rows
    return out


def evaluate_seeds(ds: LabelledImageSet, split: str, seed_dir: Path, thresholds: Sequence[float],
                   progress: bool = False, ids: Sequence[str] | None = None) -> dict[str, Any]:
    """Confusions over a split's images (or ``ids`` of it) for every threshold, summed over the images."""
    ids = ds.check_split(split, need_masks=True) if ids is None else list(ids)
    thr = np.asarray(sorted(set(float(t) for t in thresholds)), dtype=np.float64)
    num_labels = ds.num_classes + 1
    total = np.zeros((len(thr), num_labels, num_labels), dtype=np.int64)
    for image_id in tqdm(ids, desc=f"eval {split}", disable=not progress, leave=False):
        mask_path = ds.mask_path(image_id)
        gt = load_mask(mask_path)
        seed = load_seed(seed_dir / f"{image_id}.npz")
        if tuple(gt.shape) != tuple(seed.high_res.shape[1:]):
            raise _size_mismatch(ds.image_path(image_id), mask_path, seed_dir / f"{image_id}.npz",
                                 tuple(seed.high_res.shape[1:]), tuple(gt.shape))
        bad = np.setdiff1d(np.unique(gt), np.r_[np.arange(num_labels), 255])
        if bad.size:
            raise DataError(f"mask holds values {bad.tolist()} outside 0..{num_labels - 1} and 255", path=mask_path,
                            fix="check that the class list matches the masks")
        total += sweep_confusions(gt, seed.high_res.astype(np.float32), seed.keys, thr, num_labels)
    return {"thresholds": thr, "confusions": total, "ids": ids}


def _size_mismatch(image: Path, mask: Path, seed: Path, seed_hw: tuple[int, ...],
                   mask_hw: tuple[int, ...]) -> DataError:
    """Say why a seed and its mask differ in size; an EXIF rotation of the image is the usual cause.

    Images are read in their displayed orientation (EXIF applied), masks as stored: an image whose EXIF
    tag turns it by 90 degrees yields seeds with height and width swapped, and remaking them changes nothing.
    """
    orientation = exif_orientation(image) if image.is_file() else 1
    if orientation in (5, 6, 7, 8) and seed_hw == mask_hw[::-1]:
        return DataError(
            f"the image carries an EXIF rotation (orientation {orientation}), so it is read turned, "
            f"{seed_hw[0]}x{seed_hw[1]}, while its mask {mask} is stored unturned, {mask_hw[0]}x{mask_hw[1]}",
            path=image,
            fix="make the image match its mask: drop its EXIF orientation (e.g. `exiftool -Orientation=1 -n "
                f"{image}`) or turn the mask the same way; then remake its seeds with `woodseg cam --restart`",
        )
    return DataError(f"seed is {seed_hw} but its mask {mask} is {mask_hw}", path=seed,
                     fix="if the image or mask changed since `woodseg cam`, remake the seeds (`woodseg cam "
                         "--restart`); otherwise the mask was made for another image size: fix the mask")


def curve_rows(thresholds: np.ndarray, confusions: np.ndarray) -> list[dict[str, float]]:
    return [{"threshold": round(float(t), 6), **scores(c).row()} for t, c in zip(thresholds, confusions, strict=True)]


def row_at(thresholds: np.ndarray, confusions: np.ndarray, threshold: float,
           label_names: Sequence[str]) -> dict[str, Any]:
    """Scores at one threshold of the sweep, with per-class IoU / precision / recall by name."""
    j = int(np.argmin(np.abs(thresholds - threshold)))
    if abs(thresholds[j] - threshold) > 1e-9:
        raise ValueError(f"threshold {threshold} is not in the sweep")
    s = scores(confusions[j])
    per = {name: (None if np.isnan(v) else float(v)) for name, v in zip(label_names, s.iou, strict=True)}
    prec = {name: (None if np.isnan(v) else float(v)) for name, v in zip(label_names, s.precision, strict=True)}
    rec = {name: (None if np.isnan(v) else float(v)) for name, v in zip(label_names, s.recall, strict=True)}
    return {"threshold": float(thresholds[j]), **s.row(), "per_class_iou": per, "per_class_precision": prec,
            "per_class_recall": rec, "confusion": confusions[j].tolist()}


def seed_protocol(ds: LabelledImageSet, split: str, seed_dir: Path, n_images: int, selection: str,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything a reader needs to interpret a seed number."""
    index = read_index(seed_dir)
    return {
        "what": "seed (localization map) quality",
        "split": split,
        "n_images": n_images,
        "method": index.get("method", "cam"),
        "scales": index.get("scales"),
        "flip": index.get("flip"),
        "crf": False,
        "background": "constant threshold plane; ties go to background",
        "threshold_selection": selection,
        "metrics": "mIoU over background + classes (NaN-mean); P, R per-class means incl. background; "
                   "F1 = 2PR/(P+R) of the means",
        "checkpoint": index.get("checkpoint"),
        "classes": list(ds.class_names),
        **(extra or {}),
    }


def describe(protocol: dict[str, Any], threshold: float | None = None) -> str:
    """One line stating the protocol, printed with every table."""
    thr = f"threshold {threshold:.2f} ({protocol['threshold_selection']})" if threshold is not None else \
        protocol["threshold_selection"]
    scales = ",".join(f"{s:g}" for s in protocol.get("scales") or [])
    extra = f", benchmark {protocol['benchmark']}" if protocol.get("benchmark") else ""
    return (f"split {protocol['split']} ({protocol['n_images']} images), {protocol['method']} seeds, "
            f"scales {scales}{' + flip' if protocol.get('flip') else ''}, {thr}, "
            f"CRF {'on' if protocol.get('crf') else 'off'}{extra}")
