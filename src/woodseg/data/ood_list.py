"""OoD sets: a list of image paths or ids (the official ``ood_list.txt`` reads as is) or a folder of images."""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

from woodseg.data.dataset import OodSet
from woodseg.data.voc import IMAGE_EXTS
from woodseg.errors import DataError, check_folder, read_text

log = logging.getLogger(__name__)


def read_ood_list(list_file: str | Path, root: str | Path | None = None, check_exists: bool = True) -> OodSet:
    """Read one image per line, relative to ``root`` (or absolute). Order is kept: it seeds K-means.

    A line is a path (the official format: ``JPEGImages/x.jpg``) or, where no file sits at that path, an
    image id resolved to the one image file it names: ``<id>.<ext>`` with a usual image extension, in
    the root or in its ``JPEGImages/`` (so ``ood_00000`` finds ``JPEGImages/ood_00000.jpg``). Such an
    entry's id becomes the path it resolved to; two matching files are an error listing both.
    Blank lines and ``#`` comments are skipped; trailing whitespace is stripped (the official loader strips
    the newline only). A missing file is an error listing how many are missing and the first few.
    """
    list_file = Path(list_file)
    text = read_text(list_file, "OoD list", "set data.ood_list=path/to/ood_list.txt")
    base = Path(root) if root is not None else list_file.parent
    resolver = _EntryResolver(base)
    ids: list[str] = []
    paths: list[Path] = []
    seen: set[str] = set()
    rules: Counter[str] = Counter()
    for lineno, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        image_id, full, rule = resolver.resolve(entry, list_file, lineno)
        if image_id in seen:
            log.warning("%s: line %d ('%s') names %s again; using it once", list_file, lineno, entry, image_id)
            continue
        seen.add(image_id)
        rules[rule] += 1
        ids.append(image_id)
        paths.append(full)
    if not paths:
        raise DataError("OoD list is empty", path=list_file,
                        fix="add OoD images (one path per line), or train the baseline with wood.variant=none")
    if set(rules) - {"path"}:
        log.info("%s: %s", list_file, "; ".join(f"{n} entries {_RULES[r]}" for r, n in rules.items()))
    if check_exists:
        folders = [str(p) for p in paths if p.is_dir()]
        if folders:
            raise DataError(f"{len(folders)} of {len(paths)} OoD list entries are folders, not image files "
                            f"(first: {folders[:3]})", path=list_file,
                            fix="list the image files inside them, one per line (or build the list with "
                                "`woodseg ood pool-folder FOLDER --out list.txt`)")
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise DataError(
                f"{len(missing)} of {len(paths)} OoD images do not exist (first: {missing[:3]})",
                path=list_file,
                fix=f"check data.ood_root (now {base}) or remove those lines; a line is a path under it, or an "
                    f"image id whose <id>.jpg (.png, ...) lies in it or in its JPEGImages/",
            )
    return OodSet(ids, paths, source=str(list_file))


_RULES = {"path": "read as paths", "id": "read as image ids (<id>.<ext> in the root or its JPEGImages/)",
          "jpegimages": "found under JPEGImages/ (<root>/JPEGImages/<entry>)"}


class _EntryResolver:
    """Turns an OoD list entry into (id, file, rule); folders are listed once each, not stat'ed per id."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._stems: dict[Path, dict[str, list[str]]] = {}

    def resolve(self, entry: str, list_file: Path, lineno: int) -> tuple[str, Path, str]:
        p = Path(entry)
        if p.is_absolute():
            return entry, p, "path"
        full = self.base / p
        if full.is_file():
            return entry, full, "path"
        found: list[tuple[Path, str]] = []
        under = self.base / "JPEGImages" / p
        if under.is_file():
            found.append((under, "jpegimages"))
        if p.suffix.lower() not in IMAGE_EXTS:
            for folder in (full.parent, under.parent):
                found += [(folder / name, "id") for name in self._images_named(folder, p.name)]
        if not found:
            return entry, full, "path"  # reported as missing (or a folder) with its neighbours
        if len(found) > 1:
            listed = ", ".join(str(f.relative_to(self.base)) for f, _ in found)
            raise DataError(f"line {lineno}: '{entry}' could be any of {listed}", path=list_file,
                            fix="write the path of the image you mean (relative to the OoD root) on that line")
        target, rule = found[0]
        return target.relative_to(self.base).as_posix(), target, rule

    def _images_named(self, folder: Path, stem: str) -> list[str]:
        if folder not in self._stems:
            table: dict[str, list[str]] = {}
            try:
                with os.scandir(folder) as it:
                    for e in it:
                        name = Path(e.name)
                        if name.suffix.lower() in IMAGE_EXTS and e.is_file():
                            table.setdefault(name.stem, []).append(e.name)
            except OSError:  # no such folder: nothing resolves there
                pass
            self._stems[folder] = {k: sorted(v) for k, v in table.items()}
        return self._stems[folder].get(stem, [])


def ood_from_folder(folder: str | Path) -> OodSet:
    """Every image under a folder (recursively), in sorted path order."""
    folder = Path(folder)
    check_folder(folder, "OoD folder", "pass an existing folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not paths:
        raise DataError("OoD folder holds no images", path=folder, fix="add images or choose another folder")
    return OodSet([str(p.relative_to(folder)) for p in paths], paths, source=str(folder))


def write_ood_list(path: str | Path, ids: list[str]) -> None:
    """Write ids in the official format: one path per line, relative to the OoD root."""
    from woodseg.fsutil import atomic_write_text

    atomic_write_text(path, "".join(f"{i}\n" for i in ids))
