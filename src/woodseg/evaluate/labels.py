"""Evaluation of a folder of label maps (pseudo masks, predictions, seed + CRF) against the pixel masks.

The metric code and the protocol record are the seeds' (:mod:`woodseg.evaluate.metrics`,
:func:`woodseg.evaluate.seeds.seed_protocol`): confusion over pixels whose mask is not 255, mIoU over
background + classes (NaN-mean), mean precision and recall, F1 of the means, per-class IoU / P / R. The
protocol names the split, the number of images, CRF on/off, the scales, and what made the maps (the
folder's ``index.json``: settings and input hashes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from woodseg.data.dataset import LabelledImageSet
from woodseg.data.images import load_mask
from woodseg.errors import DataError
from woodseg.evaluate.metrics import confusion, scores
from woodseg.runtime.driver import ItemFolder, verify_items

METRICS = ("mIoU over background + classes (NaN-mean); P, R per-class means incl. background; "
           "F1 = 2PR/(P+R) of the means")


def class_scores(conf: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
    """mIoU, P, R, F1 and per-class IoU / precision / recall by name of one confusion matrix."""
    s = scores(conf)

    def named(values: np.ndarray) -> dict[str, float | None]:
        return {n: (None if np.isnan(v) else float(v)) for n, v in zip(label_names, values, strict=True)}

    return {**s.row(), "per_class_iou": named(s.iou), "per_class_precision": named(s.precision),
            "per_class_recall": named(s.recall), "confusion": conf.tolist()}


def image_confusion(gt: np.ndarray, pred: np.ndarray, num_labels: int, gt_path: Path, pred_path: Path) -> np.ndarray:
    """One image's confusion, refusing a map of another size or with labels outside 0..num_labels-1."""
    if gt.shape != pred.shape:
        raise DataError(f"label map is {pred.shape[0]}x{pred.shape[1]}, its mask {gt_path} is "
                        f"{gt.shape[0]}x{gt.shape[1]}", path=pred_path,
                        fix="remake the maps for this dataset (the stage that wrote them, with --restart)")
    bad = np.setdiff1d(np.unique(pred), np.arange(num_labels))
    if bad.size:
        raise DataError(f"label map holds values {bad.tolist()} outside 0..{num_labels - 1}", path=pred_path,
                        fix="label maps hold class indices of this dataset's class list; remake them")
    bad = np.setdiff1d(np.unique(gt), np.r_[np.arange(num_labels), 255])
    if bad.size:
        raise DataError(f"mask holds values {bad.tolist()} outside 0..{num_labels - 1} and 255", path=gt_path,
                        fix="check that the class list matches the masks")
    return confusion(gt, pred, num_labels)


def sum_confusions(ds: LabelledImageSet, ids: Iterable[str], labels_of: Callable[[str], tuple[np.ndarray, Path]],
                   progress: bool = False, desc: str = "eval") -> np.ndarray:
    """Summed confusion of ``labels_of(id) -> (label map, its path)`` against each image's mask."""
    n = ds.num_classes + 1
    total = np.zeros((n, n), dtype=np.int64)
    for image_id in tqdm(list(ids), desc=desc, disable=not progress, leave=False):
        pred, where = labels_of(image_id)
        mask_path = ds.mask_path(image_id)
        total += image_confusion(load_mask(mask_path), pred, n, mask_path, where)
    return total


def folder_protocol(ds: LabelledImageSet, split: str, n_images: int, what: str, made_with: dict[str, Any],
                    crf: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The protocol record of a label-map number (the seed record's keys, plus what made the maps)."""
    settings = {k: v for k, v in made_with.items() if k != "inputs"}
    return {"what": what, "split": split, "n_images": n_images, "method": settings.get("seed_method", "label maps"),
            "scales": settings.get("scales"), "flip": settings.get("flip"), "crf": crf,
            "threshold_selection": "none (label maps)", "metrics": METRICS, "classes": list(ds.class_names),
            "made_with": settings, "inputs": made_with.get("inputs", {}), **(extra or {})}


def evaluate_folder(ds: LabelledImageSet, split: str, folder: Path, *, what: str, crf: bool,
                    extra: dict[str, Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """Judge ``folder/<id>.png`` for every image of ``split``: {"protocol", "scores"}."""
    items = ItemFolder(folder, ".png")
    ids = ds.check_split(split, need_masks=True)
    verify_items(items, ids, what=f"label maps of split '{split}' in {folder.name}/")
    made_with = items.read_protocol() or {}
    classes = made_with.get("classes")
    if classes is not None and tuple(classes) != tuple(ds.class_names):
        raise DataError(f"label maps were made for classes {classes}, the dataset has {list(ds.class_names)}",
                        path=items.index, fix="remake them for this dataset (with --restart)")
    conf = sum_confusions(ds, ids, lambda i: (load_mask(items.path(i)), items.path(i)), progress, f"eval {split}")
    return {"protocol": folder_protocol(ds, split, len(ids), what, made_with, crf, extra),
            "scores": class_scores(conf, ["background", *ds.class_names])}


def describe_labels(protocol: dict[str, Any]) -> str:
    """One line stating a label-map protocol, printed with every table."""
    scales = ",".join(f"{s:g}" for s in protocol.get("scales") or [])
    return (f"{protocol['what']}: split {protocol['split']} ({protocol['n_images']} images)"
            f"{', scales ' + scales if scales else ''}, CRF {'on' if protocol.get('crf') else 'off'}")


def print_label_table(title: str, rows: dict[str, dict[str, Any]], console: Console | None = None) -> None:
    """One row per result ({"protocol", "scores"}): mIoU, P, R, F1 (%), the protocol under the table."""
    console = console or Console()
    table = Table(title=title)
    for col in ("result", "mIoU", "precision", "recall", "F1"):
        table.add_column(col, justify="left" if col == "result" else "right")
    for name, res in rows.items():
        s = res["scores"]
        table.add_row(name, *(f"{100 * s[k]:.1f}" for k in ("miou", "precision", "recall", "f1")))
    console.print(table)
    for name, res in rows.items():
        console.print(f"[dim]{name}: {describe_labels(res['protocol'])}[/dim]")
