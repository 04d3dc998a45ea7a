"""Reader for the Pascal VOC 2012 + SBD layout (and any dataset laid out the same way).

::

    root/JPEGImages/<id>.jpg
    root/Annotations/<id>.xml                     object names -> image-level labels (optional)
    root/SegmentationClass/<id>.png               palette PNGs, 255 = ignore (VOC train/val)
    root/SegmentationClassAug/<id>.png            SBD-converted masks (train_aug + val)
    root/ImageSets/Segmentation/<split>.txt       one id per line
    root/ImageSets/SegmentationAug/<split>.txt    DLP's two-column format also reads
    root/classes.txt                              optional: your own class list, one per line

Image-level labels come, in order of preference, from an IRN ``cls_labels.npy``, the Annotations XML
(every object counts, difficult and truncated ones too, as IRN's make_cls_labels does), or the masks.
"""

from __future__ import annotations

import logging
import pickle
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from woodseg.data.classes import check_class_names
from woodseg.data.dataset import VOC_CLASSES, LabelledImageSet, multi_hot, read_id_list
from woodseg.data.images import load_mask
from woodseg.errors import DataError, check_file, check_folder, read_text

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def read_class_list(path: Path) -> tuple[str, ...]:
    """One class name per line; blank lines and ``#`` comments ignored; ``background`` lines dropped."""
    text = read_text(path, "class list", "write one class name per line")
    names = [ln.strip() for ln in text.splitlines()]
    names = [n for n in names if n and not n.startswith("#") and n.lower() not in ("background", "__background__")]
    check_class_names(names, path, fix="remove the duplicate line")
    if not names:
        raise DataError("class list is empty", path=path, fix="write one class name per line")
    return tuple(names)


def read_voc(
    root: str | Path,
    class_names: list[str] | tuple[str, ...] | None = None,
    cls_labels: str | Path | None = None,
    split_files: dict[str, Path] | None = None,
) -> LabelledImageSet:
    """Build a :class:`LabelledImageSet` from a VOC-layout folder."""
    root = Path(root)
    check_folder(root, "dataset root", "set data.root to the VOC2012 folder")
    image_dir = root / "JPEGImages"
    if not image_dir.is_dir():
        raise DataError("no JPEGImages folder under the dataset root", path=root,
                        fix="point data.root at the folder that holds JPEGImages/")
    if class_names is None:
        listed = root / "classes.txt"  # present in any form (even a folder): read it, never fall back silently
        class_names = read_class_list(listed) if listed.exists() or listed.is_symlink() else VOC_CLASSES
    class_names = check_class_names(class_names, root, fix="name each class once in data.class_names")

    splits = _find_splits(root)
    for name, path in (split_files or {}).items():
        splits[name] = read_id_list(Path(path))
    if not splits:
        raise DataError("no split lists found under ImageSets/", path=root,
                        fix="add ImageSets/Segmentation/<split>.txt files (one image id per line)")
    all_ids = sorted({i for ids in splits.values() for i in ids})

    image_paths = {i: _image_file(image_dir, i) for i in all_ids}
    mask_paths: dict[str, Path] = {}
    for folder in ("SegmentationClassAug", "SegmentationClass"):  # later wins: VOC's own masks preferred
        d = root / folder
        if d.is_dir():
            for i in all_ids:
                p = d / f"{i}.png"
                if p.is_file():
                    mask_paths[i] = p

    if cls_labels is not None:
        labels = read_cls_labels_npy(Path(cls_labels), class_names)
    elif (root / "Annotations").is_dir():
        labels = _labels_from_xml(root / "Annotations", all_ids, class_names)
    else:
        labels = {}
    unlabelled = [i for i in all_ids if i not in labels]
    for i in unlabelled:  # fall back to masks where XML/npy has nothing
        if i in mask_paths:
            labels[i] = labels_from_mask(load_mask(mask_paths[i]), len(class_names), mask_paths[i])
    return LabelledImageSet(class_names, splits, labels, image_paths, mask_paths, source=str(root))


def _find_splits(root: Path) -> dict[str, list[str]]:
    splits: dict[str, list[str]] = {}
    for sub in ("ImageSets/SegmentationAug", "ImageSets/Segmentation"):  # Segmentation/ wins on name clashes
        d = root / sub
        if d.is_dir():
            for f in sorted(d.glob("*.txt")):
                splits[f.stem] = read_id_list(f)
    return splits


def _image_file(image_dir: Path, image_id: str) -> Path:
    jpg = image_dir / f"{image_id}.jpg"
    if jpg.exists():
        return jpg
    for ext in IMAGE_EXTS:
        p = image_dir / f"{image_id}{ext}"
        if p.exists():
            return p
    return jpg  # reported as missing when it is read, with its name


def _labels_from_xml(ann_dir: Path, ids: list[str], class_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    labels: dict[str, np.ndarray] = {}
    for i in ids:
        p = ann_dir / f"{i}.xml"
        if not p.is_file():
            continue
        try:
            tree = ET.parse(p)
        except ET.ParseError as exc:
            raise DataError(f"annotation XML does not parse ({exc})", path=p, fix="restore the file") from exc
        # <object><name> only: <part><name>head</name> inside an object is not a class.
        names = [(obj.findtext("name") or "").strip() for obj in tree.getroot().findall("object")]
        labels[i] = multi_hot(names, class_names, str(p))
    return labels


def labels_from_mask(mask: np.ndarray, num_classes: int, path: Path | None = None) -> np.ndarray:
    values = np.unique(mask)
    bad = [int(v) for v in values if v != 255 and v > num_classes]
    if bad:
        raise DataError(f"mask holds class values {bad} above the {num_classes} classes", path=path,
                        fix="check the class list matches the masks")
    vec = np.zeros(num_classes, dtype=np.float32)
    for v in values:
        if 0 < v <= num_classes:
            vec[int(v) - 1] = 1.0
    return vec


def read_cls_labels_npy(path: Path, class_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read IRN's ``cls_labels.npy`` (a pickled dict): int32 keys like 2007000032 or PSA's string keys."""
    check_file(path, "cls_labels file", "fix data.cls_labels or drop it")
    try:
        obj = load_npy_without_code(path)
        table = obj.item() if isinstance(obj, np.ndarray) and obj.dtype == object else obj
    except pickle.UnpicklingError as exc:
        raise DataError(f"refused to read cls_labels: {exc}", path=path,
                        fix="use a cls_labels.npy made by IRN's make_cls_labels.py (a dict of id -> multi-hot "
                            "array), or labels from Annotations/ (drop data.cls_labels)") from None
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"cannot read cls_labels ({exc})", path=path, fix="regenerate it") from exc
    if not isinstance(table, dict):
        raise DataError("cls_labels does not hold a dict of id -> multi-hot", path=path, fix="regenerate it")
    out: dict[str, np.ndarray] = {}
    for key, value in table.items():
        vec = np.asarray(value, dtype=np.float32).reshape(-1)
        if vec.shape[0] != len(class_names):
            raise DataError(
                f"labels have {vec.shape[0]} entries but the class list has {len(class_names)} classes",
                path=path,
                fix="use the class list the label file was made with (data.class_names / classes.txt)",
            )
        out[decode_irn_id(key)] = vec
    return out


# What an IRN cls_labels.npy (np.save of a dict of int/str ids -> float arrays) may ask the unpickler for.
_NUMPY_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                  ("numpy", "ndarray"), ("numpy", "dtype")}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Builds arrays, numpy scalars, dicts, lists, strings and numbers; any other global is refused, so a
    crafted file cannot call ``os.system`` the way ``np.load(allow_pickle=True)`` would let it."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _NUMPY_ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a label file never needs (it could run code)")


def load_npy_without_code(path: Path) -> np.ndarray:
    """``np.load`` for ``.npy`` files, where object arrays (IRN's pickled dict) go through an unpickler that
    only builds numpy values and plain containers."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(fh)
        if not dtype.hasobject:
            fh.seek(0)
            return np.load(fh, allow_pickle=False)
        arr = _NumpyOnlyUnpickler(fh).load()
    if not isinstance(arr, np.ndarray) or arr.shape != shape:
        raise ValueError(f"the object array's payload does not match its header (shape {shape})")
    return arr


def decode_irn_id(key: object) -> str:
    """IRN stores ``2007_000032`` as the int 2007000032; decode by string surgery (4 digits, '_', rest)."""
    if isinstance(key, bytes):
        key = key.decode()
    if isinstance(key, str):
        return key
    s = str(int(key))  # numpy int32 and Python int
    return f"{s[:4]}_{s[4:]}" if len(s) == 10 else s
