"""Reader for a plain custom layout: an image folder, a label file and a class list.

::

    root/images/<file>            any image format PIL reads
    root/classes.txt              one class name per line (classifier order)
    root/labels.csv | labels.json image -> class names
    root/masks/<stem>.png         optional pixel masks (0 background, k+1 class k, 255 ignore)
    root/splits/<split>.txt       optional; else a 'split' column in the CSV, else everything is 'train'

``labels.csv`` has a header with columns ``image`` and ``labels`` (names separated by ``;`` or ``|``) and
optionally ``split``. ``labels.json`` maps an image file name (or stem) to a list of class names.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from woodseg.data.classes import check_class_names, duplicate_names
from woodseg.data.dataset import LabelledImageSet, multi_hot, read_id_list
from woodseg.data.voc import IMAGE_EXTS, read_class_list
from woodseg.errors import DataError, check_folder, read_text


def read_custom(
    root: str | Path, class_names: list[str] | tuple[str, ...] | None = None, labels_file: str | Path | None = None
) -> LabelledImageSet:
    root = Path(root)
    check_folder(root, "dataset root", "set data.root to the folder holding images/ and classes.txt")
    image_dir = root / "images"
    if not image_dir.is_dir():
        raise DataError("no images/ folder under the dataset root", path=root, fix="put the images in root/images/")
    names = (check_class_names(class_names, root, fix="name each class once in data.class_names") if class_names
             else read_class_list(root / "classes.txt"))
    if labels_file is None:
        for cand in ("labels.csv", "labels.json"):
            if (root / cand).exists():  # a folder of that name is reported by _read_label_rows
                labels_file = root / cand
                break
        else:
            raise DataError("no labels.csv or labels.json under the dataset root", path=root,
                            fix="write labels.csv with columns image,labels (or set data.labels_file)")
    labels_file = Path(labels_file)
    rows = _read_label_rows(labels_file)

    by_stem = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS}
    labels: dict[str, np.ndarray] = {}
    image_paths: dict[str, Path] = {}
    split_col: dict[str, list[str]] = {}
    first = 1 if labels_file.suffix.lower() == ".json" else 2  # CSV: file line numbers (line 1 is the header)
    for lineno, (image, label_names, split) in enumerate(rows, first):
        image_id = Path(image).stem
        if image_id in labels:
            raise DataError(f"entry {lineno}: image '{image}' is labelled twice", path=labels_file,
                            fix="keep one row per image")
        labels[image_id] = multi_hot(label_names, names, f"{labels_file} (entry {lineno}, image '{image}')")
        image_paths[image_id] = image_dir / image if (image_dir / image).exists() else by_stem.get(
            image_id, image_dir / image)
        if split:
            split_col.setdefault(split, []).append(image_id)

    splits: dict[str, list[str]] = {}
    if (root / "splits").is_dir():
        for f in sorted((root / "splits").glob("*.txt")):
            splits[f.stem] = read_id_list(f)
    elif split_col:
        splits = split_col
    else:
        splits = {"train": list(labels)}
    for split, ids in splits.items():
        unknown = [i for i in ids if i not in labels]
        if unknown:
            raise DataError(f"split '{split}' lists images with no label (first: {unknown[:3]})", path=labels_file,
                            fix="label them or remove them from the split")

    mask_paths = {}
    if (root / "masks").is_dir():
        for i in labels:
            p = root / "masks" / f"{i}.png"
            if p.is_file():
                mask_paths[i] = p
    return LabelledImageSet(names, splits, labels, image_paths, mask_paths, source=str(root))


def _read_label_rows(path: Path) -> list[tuple[str, list[str], str | None]]:
    text = read_text(path, "label file", "set data.labels_file")
    if path.suffix.lower() == ".json":
        try:
            table = json.loads(text, object_pairs_hook=_unique_keys)
        except _KeyTwice as exc:
            raise DataError(f"image '{exc}' is labelled twice", path=path, fix="keep one entry per image") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"label file is not valid JSON ({exc})", path=path, fix="fix the JSON") from exc
        if not isinstance(table, dict):
            raise DataError("label JSON must map image -> list of class names", path=path, fix="rewrite it")
        rows = []
        for image, names in table.items():
            if isinstance(names, str):
                names = [names]
            if not isinstance(names, list):
                raise DataError(f"labels of '{image}' are not a list", path=path, fix="use a list of class names")
            rows.append((image, [str(n) for n in names], None))
        return rows
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or [])
        if not {"image", "labels"} <= cols:
            raise DataError(f"label CSV needs columns 'image' and 'labels' (has {sorted(cols)})", path=path,
                            fix="add a header line: image,labels[,split]")
        rows = []
        for row in reader:
            raw = (row.get("labels") or "").replace("|", ";")
            rows.append((row["image"].strip(), [n for n in raw.split(";") if n.strip()],
                         (row.get("split") or "").strip() or None))
        return rows


class _KeyTwice(ValueError):
    """A JSON object held a key twice (``json`` would keep the last one silently)."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    dups = duplicate_names(k for k, _ in pairs)
    if dups:
        raise _KeyTwice(dups[0])
    return dict(pairs)
