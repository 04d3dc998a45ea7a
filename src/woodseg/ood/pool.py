"""Candidate pool files: a plain image list plus optional metadata, and pools from folders or lists.

A pool is written as three files beside each other:

- ``pool.txt``: one image path per line, relative to the image root: the official ``ood_list.txt``
  format, so any pool is also a valid (unreviewed) OoD list. OpenImages pools list ``<ImageID>.jpg``
  (with an optional prefix such as ``train/``) under the folder the images were downloaded to.
- ``pool.csv``: ``path,image_id,source`` per entry (metadata; optional for readers).
- ``pool.json``: provenance: the image root (absolute), where the entries came from, counts.

``read_pool`` takes the root from ``pool.json`` when it is not given, else the list's folder.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from woodseg.data.dataset import OodSet
from woodseg.data.ood_list import ood_from_folder, read_ood_list
from woodseg.errors import DataError, read_text
from woodseg.fsutil import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

POOL_FORMAT = "woodseg.ood-pool/1"


def sidecar(pool_file: str | Path, suffix: str) -> Path:
    """``pool.txt`` -> ``pool.json`` / ``pool.csv``."""
    p = Path(pool_file)
    return p.with_suffix(suffix) if p.suffix != suffix else p.with_name(p.name + suffix)


def write_pool(out: str | Path, entries: Sequence[str], *, root: str | Path | None, source: str,
               image_ids: Sequence[str] | None = None, info: dict[str, Any] | None = None) -> Path:
    """Write ``pool.txt`` (+ ``.csv`` metadata, ``.json`` provenance) atomically; refuses an empty pool."""
    out = Path(out)
    if not entries:
        raise DataError("the pool is empty: nothing to write", path=out,
                        fix="check the inputs (label files, mapping, image folder, exclusions)")
    bad = [e for e in entries if "\n" in e or "\r" in e or not e.strip()]
    if bad:
        raise DataError(f"{len(bad)} pool entries are blank or contain a newline (first: {bad[0]!r})", path=out,
                        fix="rename those files")
    ids = list(image_ids) if image_ids is not None else [Path(e).stem for e in entries]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "image_id", "source"])
    for e, i in zip(entries, ids, strict=True):
        writer.writerow([e, i, source])
    atomic_write_text(out, "".join(f"{e}\n" for e in entries))
    atomic_write_text(sidecar(out, ".csv"), buf.getvalue())
    atomic_write_json(sidecar(out, ".json"), {
        "format": POOL_FORMAT,
        "root": str(Path(root).resolve()) if root is not None else None,
        "source": source,
        "num_images": len(entries),
        **(info or {}),
    })
    return out


def pool_root(pool_file: str | Path) -> Path:
    """The image root of a pool: from its ``pool.json`` if recorded, else the list's folder."""
    pool_file = Path(pool_file)
    meta = sidecar(pool_file, ".json")
    if meta.is_file():
        try:
            root = json.loads(meta.read_text(encoding="utf-8")).get("root")
        except json.JSONDecodeError as exc:
            raise DataError(f"pool provenance is not valid JSON ({exc})", path=meta,
                            fix="delete it and pass --root explicitly") from exc
        if root:
            return Path(root)
    return pool_file.parent


def read_pool(pool_file: str | Path, root: str | Path | None = None, check_exists: bool = True) -> OodSet:
    """Read a pool list as an :class:`OodSet` (ids are the list entries, paths are under the root)."""
    pool_file = Path(pool_file)
    text = read_text(pool_file, "candidate pool", "pass the pool.txt that `woodseg ood pool-openimages` or "
                                                  "`woodseg ood pool-folder` wrote")
    if not any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()):
        raise DataError("the candidate pool is empty", path=pool_file,
                        fix="rebuild it with `woodseg ood pool-openimages` or `woodseg ood pool-folder`")
    return read_ood_list(pool_file, root if root is not None else pool_root(pool_file), check_exists=check_exists)


def read_exclusions(path: str | Path) -> set[str]:
    """Entries or ids to leave out of a pool, one per line (see :func:`apply_exclusions` for matching)."""
    path = Path(path)
    text = read_text(path, "exclusion list", "pass an existing file to --exclude")
    return {line.split()[0] for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")}


def apply_exclusions(ood: OodSet, exclude: Iterable[str]) -> OodSet:
    """Drop entries listed exactly, and entries whose file stem is a listed bare id (no folder, no suffix)."""
    exclude = set(exclude)
    bare = {e for e in exclude if "/" not in e and not Path(e).suffix}
    keep = [i for i, e in enumerate(ood.ids) if e not in exclude and Path(e).stem not in bare]
    return ood.subset(keep)


def pool_from_images(source: str | Path, root: str | Path | None = None) -> tuple[OodSet, Path]:
    """A pool from a folder (every image under it) or from a list file (entries relative to ``root``).

    Returns the set and its image root. This is the "discarded" pool of one's own data collection.
    """
    source = Path(source)
    if source.is_dir():
        return ood_from_folder(source), source
    if source.is_file():
        base = Path(root) if root is not None else source.parent
        return read_ood_list(source, base), base
    raise DataError("neither a folder nor a list file", path=source, fix="pass an image folder or a list of images")
