"""What the refinement stages read from a run folder, checked once: seeds of this dataset, label PNGs.

A seed folder made for another class list, or a seed made for an image of another size, is refused with
the file and the fix; refinement outputs are palette PNGs of VOC label indices (0 background, c + 1 class c,
255 ignore), written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from woodseg.data.dataset import LabelledImageSet
from woodseg.data.images import load_mask
from woodseg.errors import DataError
from woodseg.runtime.driver import ItemFolder, verify_items
from woodseg.runtime.paths import INDEX
from woodseg.seeds.store import Seed, load_seed, read_index


def split_ids(ds: LabelledImageSet, splits: list[str]) -> list[str]:
    """Every image of ``splits``, once, in split order."""
    ids: dict[str, None] = {}
    for split in splits:
        ids.update(dict.fromkeys(ds.check_split(split)))
    return list(ids)


def check_seed_folder(seed_dir: Path, ds: LabelledImageSet, ids: list[str], what: str) -> dict[str, Any]:
    """The seed folder's index, after checking its class list and that every id has a seed."""
    index = read_index(seed_dir)
    classes = index.get("classes")
    if classes is not None and tuple(classes) != tuple(ds.class_names):
        raise DataError(f"seeds were made for classes {classes}, the dataset has {list(ds.class_names)}",
                        path=seed_dir / INDEX, fix="remake the seeds for this dataset (`woodseg cam --restart`) "
                                                   "or point data.root at the dataset they were made for")
    verify_items(ItemFolder(seed_dir), ids, what=f"seeds for {what}",
                 fix="make them first: `woodseg cam` with cam.splits covering this split (it resumes)")
    return index


def load_checked_seed(seed_dir: Path, image_id: str, image_hw: tuple[int, int]) -> Seed:
    """One seed, refused when it was made for an image of another size."""
    path = seed_dir / f"{image_id}.npz"
    seed = load_seed(path)
    if tuple(seed.size) != tuple(image_hw):
        raise DataError(f"seed was made for a {seed.size[0]}x{seed.size[1]} image, the image is "
                        f"{image_hw[0]}x{image_hw[1]}", path=path,
                        fix="the image changed since its seeds were made: remake them with `woodseg cam --restart`")
    return seed


def load_label_png(path: Path, hw: tuple[int, int], num_labels: int, what: str, fix: str) -> np.ndarray:
    """A label PNG (indices 0..num_labels-1 and 255), refused when its size or values do not fit."""
    labels = load_mask(path)
    if labels.shape != tuple(hw):
        raise DataError(f"{what} is {labels.shape[0]}x{labels.shape[1]}, its image is {hw[0]}x{hw[1]}",
                        path=path, fix=fix)
    bad = np.setdiff1d(np.unique(labels), np.r_[np.arange(num_labels), 255])
    if bad.size:
        raise DataError(f"{what} holds values {bad.tolist()} outside 0..{num_labels - 1} and 255", path=path,
                        fix=fix)
    return labels
