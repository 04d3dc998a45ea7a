"""Candidate OoD pools from OpenImages' own label files, streamed row by row.

The image-level label CSVs hold tens of millions of rows (``ImageID,Source,LabelName,Confidence``). They
are read once, row by row: every ImageID seen goes into a compact uint64 array (ids are 16 hex digits),
every image with a positive label for a mapped MID into a second one, and the candidates are the sorted
difference. Positive means Confidence >= 0.5: human-verified labels are 1 (present) or 0 (verified
absent), machine labels are fractional (the openimages/dataset README). A missing row is not a negative, which is
why the ranked candidates are reviewed by a person afterwards.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import re
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from woodseg.errors import DataError, check_file, check_folder
from woodseg.ood.mapping import ResolvedMapping

log = logging.getLogger(__name__)

LABEL_COLUMNS = ("ImageID", "LabelName", "Confidence")
POSITIVE_CONFIDENCE = 0.5
_HEX16 = re.compile(r"[0-9a-f]{16}")


def _open_text(path: Path) -> TextIO:
    check_file(path, "OpenImages CSV", "check the path (OpenImages CSVs may be .csv or .csv.gz)")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_class_descriptions(path: str | Path) -> dict[str, str]:
    """MID -> display name, from ``class-descriptions*.csv`` (V4/V5: no header; V6+: ``LabelName,DisplayName``)."""
    path = Path(path)
    out: dict[str, str] = {}
    with _open_text(path) as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if lineno == 1 and row[0].strip().lower() == "labelname":
                continue
            if len(row) < 2 or not row[0].startswith("/"):
                raise DataError(f"line {lineno}: expected `MID,display name`, got {row[:3]}", path=path,
                                fix="pass OpenImages' class-descriptions CSV (e.g. oidv6-class-descriptions.csv)")
            out[row[0].strip()] = row[1].strip()
    if not out:
        raise DataError("class descriptions file is empty", path=path, fix="re-download it")
    return out


@dataclass
class PoolStats:
    """What a pool build saw: rows and images per file, positives per target class."""

    rows: dict[str, int] = field(default_factory=dict)
    images_seen: int = 0
    images_excluded: int = 0
    positive_rows_per_class: dict[str, int] = field(default_factory=dict)
    candidates: int = 0


class _IdSet:
    """Append-only ImageIDs: 16-hex-digit ids as uint64 (8 bytes each), anything else in a Python set."""

    def __init__(self) -> None:
        self.packed = array("Q")
        self.other: set[str] = set()

    def add(self, image_id: str) -> None:
        if _HEX16.fullmatch(image_id):
            self.packed.append(int(image_id, 16))
        else:
            self.other.add(image_id)

    def unique(self) -> tuple[np.ndarray, set[str]]:
        return np.unique(np.frombuffer(self.packed, dtype=np.uint64)) if self.packed else np.zeros(0, np.uint64), self.other


def stream_label_rows(path: str | Path, *, progress: Callable[[int], None] | None = None) -> Iterator[tuple[str, str, float]]:
    """Yield (ImageID, LabelName, Confidence) from an image-level label CSV, checking its header."""
    path = Path(path)
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise DataError("label file is empty", path=path, fix="re-download it")
        header = [h.strip().lstrip("\ufeff") for h in header]
        missing = [c for c in LABEL_COLUMNS if c not in header]
        if missing:
            raise DataError(
                f"label file lacks column(s) {missing} (header: {header[:6]})", path=path,
                fix="pass OpenImages image-level label CSVs (header ImageID,Source,LabelName,Confidence); "
                "box files and class descriptions go elsewhere",
            )
        i_id, i_label, i_conf = (header.index(c) for c in LABEL_COLUMNS)
        width = max(i_id, i_label, i_conf) + 1
        for lineno, row in enumerate(reader, 2):
            if len(row) < width:
                if not row:
                    continue
                raise DataError(f"line {lineno}: {len(row)} columns, expected {len(header)}", path=path,
                                fix="the file looks truncated: re-download it")
            try:
                conf = float(row[i_conf])
            except ValueError:
                raise DataError(f"line {lineno}: Confidence '{row[i_conf]}' is not a number", path=path,
                                fix="re-download the file; Confidence must be 0/1 (human) or a fraction (machine)") from None
            if progress is not None and lineno % 100_000 == 0:
                progress(100_000)
            yield row[i_id], row[i_label], conf


def build_openimages_pool(
    label_files: Sequence[str | Path],
    resolved: ResolvedMapping,
    *,
    machine_label_files: Sequence[str | Path] = (),
    progress: Callable[[int], None] | None = None,
) -> tuple[list[str], PoolStats]:
    """ImageIDs seen in the label files that carry no positive label for any mapped MID, sorted.

    Images seen only in machine-label files count as seen too. The result is every candidate; sample or
    restrict to downloaded files afterwards (:func:`restrict_to_existing`, :func:`sample_ids`).
    """
    if not label_files:
        raise DataError("no human-verified label file given",
                        fix="pass at least one *-annotations-human-imagelabels*.csv with --labels")
    mid_classes = resolved.mid_to_classes()
    seen, excluded = _IdSet(), _IdSet()
    stats = PoolStats(positive_rows_per_class={c: 0 for c in resolved.mids})
    for path in [*label_files, *machine_label_files]:
        rows = 0
        last_id = None
        for image_id, label, conf in stream_label_rows(path, progress=progress):
            rows += 1
            if image_id != last_id:  # files are grouped by ImageID: add each id once per run of rows
                seen.add(image_id)
                last_id = image_id
            classes = mid_classes.get(label)
            if classes is not None and conf >= POSITIVE_CONFIDENCE:
                excluded.add(image_id)
                for c in classes:
                    stats.positive_rows_per_class[c] += 1
        stats.rows[str(path)] = rows
        log.info("%s: %d rows", path, rows)
    seen_packed, seen_other = seen.unique()
    ex_packed, ex_other = excluded.unique()
    keep_packed = np.setdiff1d(seen_packed, ex_packed, assume_unique=True)
    keep = [f"{int(v):016x}" for v in keep_packed] + sorted(seen_other - ex_other)
    keep.sort()
    stats.images_seen = int(seen_packed.size) + len(seen_other)
    stats.images_excluded = int(ex_packed.size) + len(ex_other)
    stats.candidates = len(keep)
    if not keep:
        raise DataError(
            f"no candidate left: all {stats.images_seen} images seen carry a mapped label",
            path=str(label_files[0]), fix="pass more label files, or check the mapping is not too broad",
        )
    return keep, stats


def restrict_to_existing(ids: Sequence[str], image_dir: str | Path, suffix: str = ".jpg") -> list[str]:
    """Keep ids whose ``<image_dir>/<id><suffix>`` exists (one directory listing, not one stat per id)."""
    image_dir = Path(image_dir)
    check_folder(image_dir, "image folder", "pass the folder holding <ImageID>.jpg files")
    present = {e.name[: -len(suffix)] for e in os.scandir(image_dir) if e.name.endswith(suffix) and e.is_file()}
    kept = [i for i in ids if i in present]
    if not kept:
        raise DataError(f"none of the {len(ids)} candidates has a file <ImageID>{suffix} here", path=image_dir,
                        fix="download the images first, or check --prefix / the folder")
    return kept


def sample_ids(ids: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """A reproducible random subset of ``n`` ids, kept in sorted order."""
    if n >= len(ids):
        return list(ids)
    pick = np.random.default_rng(seed).choice(len(ids), size=n, replace=False)
    return [ids[i] for i in sorted(pick)]
