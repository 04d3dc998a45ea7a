"""Hard-OoD candidates: images with p(c) >= threshold, ranked per class by p(c) descending (Sec. 3.1).

An image that scores high for several classes is a candidate of each, and appears in each class's list.
Per-class candidate files are CSV (``rank,path,image_id,p,compactness,stability``), one per class.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from woodseg.errors import DataError, check_file
from woodseg.fsutil import atomic_write_text

CANDIDATE_COLUMNS = ("rank", "path", "image_id", "p", "compactness", "stability")


@dataclass(frozen=True)
class Candidate:
    """One (image, class) pair to review. ``entry`` is the pool line (path relative to the image root)."""

    entry: str
    class_name: str
    p: float
    rank: int
    compactness: float = math.nan
    stability: float = math.nan

    @property
    def image_id(self) -> str:
        return Path(self.entry).stem


def select_candidates(scores: np.ndarray, ids: Sequence[str], class_names: Sequence[str], threshold: float = 0.5, *,
                      compactness: np.ndarray | None = None,
                      stability: np.ndarray | None = None) -> dict[str, list[Candidate]]:
    """Per class (every class gets a key), the images with p(c) >= threshold, sorted by p(c) desc then id.

    NaN rows (images that could not be read) never qualify.
    """
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 2 or scores.shape != (len(ids), len(class_names)):
        raise ValueError(f"scores shape {scores.shape} does not match {len(ids)} ids x {len(class_names)} classes")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    out: dict[str, list[Candidate]] = {}
    for c, name in enumerate(class_names):
        col = scores[:, c]
        hit = np.flatnonzero(np.nan_to_num(col, nan=-1.0) >= threshold)
        ordered = sorted(hit.tolist(), key=lambda i: (-float(col[i]), ids[i]))
        out[name] = [
            Candidate(ids[i], name, float(col[i]), r,
                      _get(compactness, i, c), _get(stability, i, c))
            for r, i in enumerate(ordered, 1)
        ]
    return out


def _get(arr: np.ndarray | None, i: int, c: int) -> float:
    return math.nan if arr is None else float(arr[i, c])


def class_file_name(index: int, class_name: str) -> str:
    """A safe file name per class: ``07_cat.csv`` (index keeps odd names unique)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", class_name).strip("._") or "class"
    return f"{index:02d}_{slug[:60]}.csv"


def write_candidates_csv(path: str | Path, candidates: Sequence[Candidate]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CANDIDATE_COLUMNS)
    for cand in candidates:
        w.writerow([cand.rank, cand.entry, cand.image_id, f"{cand.p:.6f}", _fmt(cand.compactness), _fmt(cand.stability)])
    atomic_write_text(path, buf.getvalue())


def _fmt(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.6f}"


def read_candidates_csv(path: str | Path, class_name: str) -> list[Candidate]:
    path = Path(path)
    check_file(path, "candidate file", "re-run `woodseg ood merge` on the ranking folder")
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("rank", "path", "p") if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"candidate file lacks column(s) {missing}", path=path,
                            fix="regenerate it with `woodseg ood merge`")
        out = []
        for lineno, row in enumerate(reader, 2):
            try:
                out.append(Candidate(row["path"], class_name, float(row["p"]), int(row["rank"]),
                                     float(row.get("compactness") or "nan"), float(row.get("stability") or "nan")))
            except ValueError as exc:
                raise DataError(f"line {lineno}: bad value ({exc})", path=path, fix="regenerate it with `woodseg ood merge`") from None
    return out
