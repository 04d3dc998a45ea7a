"""Reading the ground truth the benchmark keeps apart from its images.

``ood_pool/truth.csv`` says, for each candidate OoD image, whether it is a hard OoD (a class context
without any class object), an easy OoD (a neutral scene) or a hidden positive (holds a class object), its
scene, which classes that scene is the context of, and which classes it holds. ``image_truth.csv`` says
the same for the in-distribution images (and whether the scene is in context).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from woodseg.errors import DataError

POOL_KINDS = ("hard", "easy", "positive")


def _names(cell: str | None) -> tuple[str, ...]:
    return tuple(n for n in (cell or "").split(";") if n)


@dataclass(frozen=True)
class PoolTruth:
    """Truth of one candidate OoD image. ``path`` is its ``pool.txt`` entry (relative to ``ood_pool/``)."""

    id: str
    path: str
    kind: str  # hard | easy | positive
    context: str  # scene name: sky, runway, foliage, water, meadow, rails, brick, indoor, photo
    context_classes: tuple[str, ...]  # classes whose context the scene is (empty for neutral scenes)
    classes: tuple[str, ...]  # classes present (only positives have any)
    n_objects: int
    n_distractors: int
    scene_detail: str

    @property
    def is_positive(self) -> bool:
        return self.kind == "positive"


@dataclass(frozen=True)
class ImageTruth:
    """Scene truth of one in-distribution image."""

    id: str
    split: str  # train_aug | val
    in_train: bool
    classes: tuple[str, ...]
    scene: str
    scene_detail: str
    context_classes: tuple[str, ...]
    in_context: bool | None  # None when no class in the image has a fixed context (tvmonitor only)
    n_objects: int
    n_distractors: int


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError("benchmark truth file does not exist", path=path,
                        fix="regenerate the benchmark (woodseg.data.benchmark.ensure_benchmark)")
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_pool_truth(root: str | Path) -> dict[str, PoolTruth]:
    """Pool truth by image id (``p1_000045``), in pool order."""
    path = Path(root) / "ood_pool" / "truth.csv"
    out: dict[str, PoolTruth] = {}
    for row in _rows(path):
        try:
            t = PoolTruth(row["id"], row["path"], row["kind"], row["context"], _names(row["context_classes"]),
                          _names(row["classes"]), int(row["n_objects"]), int(row["n_distractors"]),
                          row.get("scene_detail", ""))
        except (KeyError, ValueError) as exc:
            raise DataError(f"malformed truth row ({exc})", path=path, fix="regenerate the benchmark") from exc
        if t.kind not in POOL_KINDS:
            raise DataError(f"unknown pool kind '{t.kind}'", path=path, fix="regenerate the benchmark")
        out[t.id] = t
    return out


def read_image_truth(root: str | Path) -> dict[str, ImageTruth]:
    """In-distribution scene truth by image id (``b1_000123``)."""
    path = Path(root) / "image_truth.csv"
    out: dict[str, ImageTruth] = {}
    for row in _rows(path):
        try:
            ic = row["in_context"]
            out[row["id"]] = ImageTruth(row["id"], row["split"], row["in_train"] == "1", _names(row["classes"]),
                                        row["scene"], row.get("scene_detail", ""), _names(row["context_classes"]),
                                        None if ic == "" else ic == "1", int(row["n_objects"]),
                                        int(row["n_distractors"]))
        except (KeyError, ValueError) as exc:
            raise DataError(f"malformed truth row ({exc})", path=path, fix="regenerate the benchmark") from exc
    return out
