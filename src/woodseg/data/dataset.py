"""The dataset abstraction every stage uses, independent of the on-disk layout.

A :class:`LabelledImageSet` is a class list, image ids per split, a multi-hot label per image and, where
known, a pixel mask per image. Readers (``voc.py``, ``custom.py``) build one; nothing downstream knows
which layout it came from. An :class:`OodSet` is an ordered list of image files without labels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from woodseg.data.classes import check_class_names
from woodseg.errors import DataError, read_text

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
"""The 20 Pascal VOC foreground classes in classifier order (VOC label = index + 1; 0 is background)."""


@dataclass
class LabelledImageSet:
    """Images with image-level labels (and optional masks), grouped into named splits.

    ``labels[id]`` is float32 multi-hot over ``class_names`` (no background). Mask values follow the VOC
    convention: 0 background, k+1 for class k, 255 ignore.
    """

    class_names: tuple[str, ...]
    splits: dict[str, list[str]]
    labels: dict[str, np.ndarray]
    image_paths: dict[str, Path]
    mask_paths: dict[str, Path] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        self.class_names = check_class_names(self.class_names, self.source or None)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def ids(self, split: str) -> list[str]:
        if split not in self.splits:
            raise DataError(
                f"split '{split}' is not defined for {self.source or 'this dataset'}",
                fix=f"use one of: {', '.join(sorted(self.splits)) or '(none found)'}",
            )
        return self.splits[split]

    def label(self, image_id: str) -> np.ndarray:
        try:
            return self.labels[image_id]
        except KeyError:
            raise DataError(
                f"image '{image_id}' has no image-level label in {self.source or 'the label file'}",
                fix="add it to the label file or remove it from the split list",
            ) from None

    def image_path(self, image_id: str) -> Path:
        return self.image_paths[image_id]

    def mask_path(self, image_id: str) -> Path | None:
        return self.mask_paths.get(image_id)

    def has_masks(self, split: str) -> bool:
        ids = self.ids(split)
        return bool(ids) and all(i in self.mask_paths for i in ids)

    def check_split(self, split: str, need_masks: bool = False) -> list[str]:
        """Ids of a split, after checking every image has a label (and a mask if asked)."""
        ids = self.ids(split)
        if not ids:
            raise DataError(f"split '{split}' of {self.source} is empty", fix="fill its list file")
        missing = [i for i in ids if i not in self.labels]
        if missing:
            raise DataError(
                f"{len(missing)} images of split '{split}' have no label (first: {missing[:3]})",
                path=self.source or None,
                fix="regenerate the label file for this split, or remove those ids from the split list",
            )
        if need_masks:
            no_mask = [i for i in ids if i not in self.mask_paths]
            if no_mask:
                raise DataError(
                    f"{len(no_mask)} images of split '{split}' have no pixel mask (first: {no_mask[:3]})",
                    path=self.source or None,
                    fix="judge seeds on a split with masks (data.seed_split) or add the masks",
                )
        return ids

    def class_counts(self, split: str) -> np.ndarray:
        return np.stack([self.labels[i] for i in self.ids(split)]).sum(0)

    def fingerprint(self, split: str) -> str:
        """A short hash of the class list, the split's ids and labels: outputs made on other data are refused."""
        h = hashlib.sha256("|".join(self.class_names).encode())
        for i in self.ids(split):
            h.update(i.encode())
            h.update(np.asarray(self.labels.get(i, []), dtype=np.float32).tobytes())
        return h.hexdigest()[:16]


@dataclass
class OodSet:
    """Out-of-distribution images: an ordered list (order matters: it seeds the official K-means)."""

    ids: list[str]
    paths: list[Path]
    source: str = ""

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: Sequence[int]) -> OodSet:
        return OodSet([self.ids[i] for i in indices], [self.paths[i] for i in indices], self.source)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for i in self.ids:
            h.update(i.encode() + b"\n")
        return h.hexdigest()[:16]


def multi_hot(names: Sequence[str], class_names: Sequence[str], where: str) -> np.ndarray:
    """Multi-hot float32 vector for class names; an unknown name is an error naming the file."""
    index = {n: i for i, n in enumerate(class_names)}
    vec = np.zeros(len(class_names), dtype=np.float32)
    for n in names:
        n = n.strip()
        if not n:
            continue
        if n not in index:
            raise DataError(
                f"label '{n}' is not in the class list ({', '.join(class_names)})",
                path=where,
                fix="correct the label or add the class to the class list",
            )
        vec[index[n]] = 1.0
    return vec


def read_id_list(path: Path) -> list[str]:
    """Read a split list: one id per line, or DLP's two-column ``/JPEGImages/x.jpg /Seg.../x.png`` format.

    Ids stay strings (``2007_000032``); they are never parsed as integers (IRN's int32 keys such as 2007000032 would lose the underscore).
    """
    text = read_text(path, "split list", "create it or choose another split")
    ids: list[str] = []
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        token = line.split()[0]
        image_id = Path(token).stem if ("/" in token or "." in Path(token).name) else token
        if image_id in seen:
            raise DataError(f"line {lineno}: id '{image_id}' is listed twice", path=path, fix="remove the duplicate")
        seen.add(image_id)
        ids.append(image_id)
    return ids
