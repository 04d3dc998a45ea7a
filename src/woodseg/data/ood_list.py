"""OoD sets: a list of image paths (the official ``ood_list.txt`` reads as is) or a folder of images."""

from __future__ import annotations

import logging
from pathlib import Path

from woodseg.data.dataset import OodSet
from woodseg.data.voc import IMAGE_EXTS
from woodseg.errors import DataError

log = logging.getLogger(__name__)


def read_ood_list(list_file: str | Path, root: str | Path | None = None, check_exists: bool = True) -> OodSet:
    """Read one image path per line, relative to ``root`` (or absolute). Order is kept: it seeds K-means.

    Blank lines and ``#`` comments are skipped; trailing whitespace is stripped (the official loader strips
    the newline only). A missing file is an error listing how many are missing and the first few.
    """
    list_file = Path(list_file)
    if not list_file.is_file():
        raise DataError("OoD list does not exist", path=list_file, fix="set data.ood_list (or pass --ood-list)")
    base = Path(root) if root is not None else list_file.parent
    ids, paths, seen = [], [], set()
    for line in list_file.read_text(encoding="utf-8").splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        p = Path(entry)
        full = p if p.is_absolute() else base / p
        if entry in seen:
            log.warning("%s: '%s' is listed twice; using it once", list_file, entry)
            continue
        seen.add(entry)
        ids.append(entry)
        paths.append(full)
    if not paths:
        raise DataError("OoD list is empty", path=list_file,
                        fix="add OoD images (one path per line), or train the baseline with wood.variant=none")
    if check_exists:
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise DataError(
                f"{len(missing)} of {len(paths)} OoD images do not exist (first: {missing[:3]})",
                path=list_file,
                fix=f"check data.ood_root (now {base}) or remove those lines",
            )
    return OodSet(ids, paths, source=str(list_file))


def ood_from_folder(folder: str | Path) -> OodSet:
    """Every image under a folder (recursively), in sorted path order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("OoD folder does not exist", path=folder, fix="pass an existing folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not paths:
        raise DataError("OoD folder holds no images", path=folder, fix="add images or choose another folder")
    return OodSet([str(p.relative_to(folder)) for p in paths], paths, source=str(folder))


def write_ood_list(path: str | Path, ids: list[str]) -> None:
    """Write ids in the official format: one path per line, relative to the OoD root."""
    from woodseg.fsutil import atomic_write_text

    atomic_write_text(path, "".join(f"{i}\n" for i in ids))
