"""COCO-2014 for WSSS: 80 classes + background, image-level labels and semantic masks from the instances JSON.

The layout :func:`read_coco` reads (what ``woodseg data prepare-coco`` writes; the VOC-style COCO mask
folders circulated for WSSS have the same shape)::

    root/JPEGImages/<split>/<stem>.jpg          e.g. JPEGImages/train2014/COCO_train2014_000000000009.jpg
    root/SegmentationClass/<split>/<stem>.png   0 background, 1..80 the classes in category-id order, 255 ignore
    root/ImageSets/<split>.txt                  one image stem per line
    root/cls_labels_<split>.npz                 ids + multi-hot labels (no pickle); else the JSON, else the masks
    root/annotations/instances_<split>.json     the official COCO annotations (optional once prepared)

Conventions (fixed here, since the WSSS literature leaves them implicit):

- category ids 1..90 (80 used) map to contiguous classes 1..80 in increasing id order (:data:`COCO_CLASSES`);
- image-level labels: every category with an annotation on the image, crowd annotations included;
- masks: crowd regions are painted 255 (ignore) first; then non-crowd instances from the largest area to
  the smallest (ties: lower annotation id first), so a smaller object lying on a larger one keeps its pixels.
- images with no annotation stay in the split lists (all-negative labels, all-background masks): the usual
  protocol counts 82,783 train and 40,504 val images.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from woodseg.data.dataset import LabelledImageSet, read_id_list
from woodseg.data.images import load_mask
from woodseg.data.palette import save_palette_png
from woodseg.data.voc import labels_from_mask, read_class_list
from woodseg.errors import DataError
from woodseg.fsutil import atomic_path, atomic_write_json, atomic_write_text
from woodseg.runtime.workers import WorkerPool

log = logging.getLogger(__name__)

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip
"""The 80 COCO classes in increasing category-id order: class k (0-based) is mask value k + 1."""

COCO14_SPLIT_SIZES = {"train2014": 82_783, "val2014": 40_504}
_DONE = "prepare_coco.json"


def load_coco_api(path: str | Path) -> Any:
    """``pycocotools.coco.COCO`` on an instances JSON, with errors that name the file and the fix."""
    try:
        from pycocotools.coco import COCO
    except ImportError as exc:
        raise DataError("reading COCO annotations needs pycocotools, which is not installed",
                        fix="pip install 'woodseg[coco]'  (or: pip install pycocotools)") from exc
    path = Path(path)
    if not path.is_file():
        raise DataError("COCO instances JSON does not exist", path=path,
                        fix="unzip annotations_trainval2014.zip and pass its annotations/ folder")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
            return COCO(str(path))
    except (json.JSONDecodeError, KeyError, TypeError, AssertionError) as exc:
        raise DataError(f"not a COCO instances JSON ({type(exc).__name__}: {exc})", path=path,
                        fix="use annotations/instances_<split>.json from the official COCO release") from exc


def category_index(coco: Any, where: Path | str) -> dict[int, int]:
    """COCO category id -> 0-based class index (increasing id order); the names must be COCO's 80."""
    cats = sorted(coco.loadCats(coco.getCatIds()), key=lambda c: c["id"])
    names = tuple(c["name"] for c in cats)
    if names != COCO_CLASSES:
        odd = [n for n in names if n not in COCO_CLASSES] or [n for n in COCO_CLASSES if n not in names]
        raise DataError(f"the JSON has {len(names)} categories that are not COCO's 80 in id order "
                        f"(e.g. {odd[:3] or names[:3]})", path=where,
                        fix="use the official instances JSON of COCO 2014")
    return {c["id"]: i for i, c in enumerate(cats)}


def image_stem(info: dict) -> str:
    return Path(info["file_name"]).stem


def image_labels(coco: Any, img_id: int, cat_to_index: dict[int, int]) -> np.ndarray:
    """Multi-hot over the 80 classes: every category annotated on the image, crowd annotations included."""
    vec = np.zeros(len(cat_to_index), dtype=np.float32)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=[img_id], iscrowd=None)):
        vec[cat_to_index[ann["category_id"]]] = 1.0
    return vec


def annotation_mask(ann: dict, height: int, width: int) -> np.ndarray:
    """uint8 HxW 0/1 of one annotation: polygons, uncompressed or compressed RLE (pycocotools ``COCO.annToMask``,
    without the API object, so worker processes need only the image's annotations)."""
    from pycocotools import mask as mask_utils

    segm = ann["segmentation"]
    if isinstance(segm, list):  # polygons
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    elif isinstance(segm["counts"], list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segm, height, width)
    else:
        rle = segm
    return mask_utils.decode(rle)


def mask_from_annotations(height: int, width: int, anns: list[dict], cat_to_index: dict[int, int]) -> np.ndarray:
    """uint8 HxW semantic mask of one image from its annotation dicts: crowd 255 first, then instances largest
    to smallest (ties by annotation id) on top."""
    mask = np.zeros((height, width), dtype=np.uint8)
    for ann in sorted((a for a in anns if a.get("iscrowd", 0)), key=lambda a: a["id"]):
        mask[annotation_mask(ann, height, width) > 0] = 255
    for ann in sorted((a for a in anns if not a.get("iscrowd", 0)), key=lambda a: (-float(a["area"]), a["id"])):
        mask[annotation_mask(ann, height, width) > 0] = cat_to_index[ann["category_id"]] + 1
    return mask


def _write_mask(job: tuple[Path, int, int, list[dict], dict[int, int]]) -> None:
    """Write one image's semantic mask (module level: it runs in worker processes)."""
    dst, height, width, anns, cat_to_index = job
    save_palette_png(dst, mask_from_annotations(height, width, anns, cat_to_index))


MASK_CHUNK = 2500  # images per round of worker jobs: a progress line and a Ctrl+C point between rounds


def prepare_coco(annotations: str | Path, images_root: str | Path, out: str | Path,
                 splits: tuple[str, ...] = ("train2014", "val2014"), progress: Any = None,
                 processes: int | None = 1) -> dict:
    """Write masks, split lists, labels and classes.txt for each split under ``out`` (resumable).

    ``annotations`` holds ``instances_<split>.json``; ``images_root`` holds ``<split>/`` image folders,
    which are linked (not copied) as ``out/JPEGImages/<split>``. The masks are drawn in ``processes``
    worker processes (None: one per CPU core); each worker gets only its images' annotations.
    """
    say = progress or log.info
    annotations, images_root, out = Path(annotations), Path(images_root), Path(out)
    if (out / _DONE).is_file():
        say(f"{out} is already prepared ({_DONE} exists); delete that file to rebuild")
        return json.loads((out / _DONE).read_text(encoding="utf-8"))
    summary: dict = {"splits": {}, "unlabelled": {}}
    for split in splits:
        src = images_root / split
        if not src.is_dir():
            raise DataError(f"no {split}/ image folder", path=images_root,
                            fix=f"unzip {split}.zip there, or pass --images-root the folder that holds {split}/")
        coco = load_coco_api(annotations / f"instances_{split}.json")
        cat_to_index = category_index(coco, annotations / f"instances_{split}.json")
        link = out / "JPEGImages" / split
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(src.resolve(), target_is_directory=True)
        infos = sorted(coco.loadImgs(coco.getImgIds()), key=image_stem)
        ids = [image_stem(info) for info in infos]
        labels = [image_labels(coco, info["id"], cat_to_index) for info in infos]
        todo = [(out / "SegmentationClass" / split / f"{stem}.png", info) for stem, info in zip(ids, infos, strict=True)]
        todo = [(dst, info) for dst, info in todo if not dst.is_file()]  # finished masks are kept
        say(f"{split}: writing {len(todo)} of {len(infos)} masks")
        with WorkerPool(processes) as pool:
            for start in range(0, len(todo), MASK_CHUNK):
                jobs = [(dst, info["height"], info["width"],
                         coco.loadAnns(coco.getAnnIds(imgIds=[info["id"]], iscrowd=None)), cat_to_index)
                        for dst, info in todo[start:start + MASK_CHUNK]]
                pool.map(_write_mask, jobs, chunksize=16)
                say(f"{split}: {min(start + MASK_CHUNK, len(todo))}/{len(todo)}")
        matrix = np.stack(labels).astype(np.uint8) if labels else np.zeros((0, 80), np.uint8)
        with atomic_path(out / f"cls_labels_{split}.npz") as tmp:
            np.savez_compressed(tmp, ids=np.array(ids, dtype=str), labels=matrix)
        atomic_write_text(out / "ImageSets" / f"{split}.txt", "\n".join(ids) + "\n")
        summary["splits"][split] = len(ids)
        summary["unlabelled"][split] = int((matrix.sum(1) == 0).sum())
        if split in COCO14_SPLIT_SIZES and len(ids) != COCO14_SPLIT_SIZES[split]:
            log.warning("%s has %d images, not the usual %d", split, len(ids), COCO14_SPLIT_SIZES[split])
    atomic_write_text(out / "classes.txt", "\n".join(COCO_CLASSES) + "\n")
    atomic_write_json(out / _DONE, summary)
    return summary


def read_label_npz(path: Path, class_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The ``cls_labels_<split>.npz`` prepare-coco writes: ``ids`` (str) and ``labels`` (N x C, 0/1)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            ids, matrix = z["ids"], z["labels"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot read the label file ({exc})", path=path,
                        fix="re-run `woodseg data prepare-coco` (delete prepare_coco.json first)") from exc
    if matrix.ndim != 2 or matrix.shape[1] != len(class_names) or matrix.shape[0] != ids.shape[0]:
        raise DataError(f"labels have shape {matrix.shape} for {ids.shape[0]} ids and {len(class_names)} classes",
                        path=path, fix="use the class list the label file was made with (classes.txt)")
    return {str(i): row.astype(np.float32) for i, row in zip(ids, matrix, strict=True)}


def read_coco(root: str | Path, class_names: list[str] | tuple[str, ...] | None = None) -> LabelledImageSet:
    """Build a :class:`LabelledImageSet` from the layout above; every split in ImageSets/ is read."""
    root = Path(root)
    if not (root / "JPEGImages").is_dir():
        raise DataError("no JPEGImages/ under the COCO root", path=root,
                        fix="run `woodseg data prepare-coco` and point data.root at its --out folder")
    if class_names is None:
        class_names = read_class_list(root / "classes.txt") if (root / "classes.txt").is_file() else COCO_CLASSES
    class_names = tuple(class_names)
    lists = sorted((root / "ImageSets").glob("*.txt")) if (root / "ImageSets").is_dir() else []
    if not lists:
        raise DataError("no split lists in ImageSets/", path=root,
                        fix="run `woodseg data prepare-coco`, or write ImageSets/<split>.txt (one stem a line)")
    splits = {f.stem: read_id_list(f) for f in lists}
    folders = [d.name for d in sorted((root / "JPEGImages").iterdir()) if d.is_dir()]

    image_paths, mask_paths, labels = {}, {}, {}
    for split, ids in splits.items():
        for i in ids:
            folder = _folder_of(i, split, folders)
            image_paths[i] = root / "JPEGImages" / folder / f"{i}.jpg"
            m = root / "SegmentationClass" / folder / f"{i}.png"
            if m.is_file():
                mask_paths[i] = m
    for folder in folders:
        npz = root / f"cls_labels_{folder}.npz"
        js = root / "annotations" / f"instances_{folder}.json"
        if npz.is_file():
            labels.update(read_label_npz(npz, class_names))
        elif js.is_file():
            coco = load_coco_api(js)
            cat_to_index = category_index(coco, js)
            for info in coco.loadImgs(coco.getImgIds()):
                labels[image_stem(info)] = image_labels(coco, info["id"], cat_to_index)
    for i in image_paths:
        if i not in labels and i in mask_paths:
            labels[i] = labels_from_mask(load_mask(mask_paths[i]), len(class_names), mask_paths[i])
    return LabelledImageSet(class_names, splits, labels, image_paths, mask_paths, source=str(root))


def _folder_of(image_id: str, split: str, folders: list[str]) -> str:
    """The JPEGImages sub-folder of an image: the split of a COCO_<split>_<n> name, else the list's name."""
    parts = image_id.split("_")
    if len(parts) == 3 and parts[0] == "COCO" and parts[1] in folders:
        return parts[1]
    if split in folders or len(folders) != 1:
        return split
    return folders[0]
