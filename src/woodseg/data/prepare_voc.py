"""Build the VOC 2012 + SBD training layout (SegmentationClassAug, train_aug) from the two public archives.

Inputs: the VOC 2012 trainval tar (``VOCtrainval_11-May-2012.tar``) and the SBD release
(``benchmark.tgz``, folder ``benchmark_RELEASE/dataset`` with ``cls/<id>.mat``, ``train.txt``, ``val.txt``),
either as the archives or as already-extracted folders. Output, under ``out/VOC2012`` (what
:func:`woodseg.data.voc.read_voc` reads)::

    JPEGImages/ Annotations/ SegmentationClass/ ImageSets/Segmentation/   extracted from the VOC tar
    SegmentationClassAug/<id>.png        index PNGs for train_aug + val (VOC palette for viewing)
    ImageSets/SegmentationAug/train_aug.txt
    prepare_voc.json                     counts, per-class image counts, checksums: written last

train_aug is the usual (SBD train + SBD val + VOC train) - VOC val: 10,582 images on the published data.
Masks come from VOC's own SegmentationClass where the image has one (its 255 object borders kept), else
from SBD's ``GTcls.Segmentation`` (no ignore border), as in the SegmentationClassAug release of DeepLab.
Image-level labels are the Annotations XML (every object, as IRN's ``make_cls_labels.py`` reads them);
the summary records them per class. Every file is written atomically and existing outputs are kept, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

from woodseg.data.dataset import VOC_CLASSES, read_id_list
from woodseg.data.palette import save_palette_png
from woodseg.data.voc import _labels_from_xml
from woodseg.errors import DataError
from woodseg.fsutil import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

VOC_TAR_MD5 = "6cd6e144f989b92b3379bac3b3de84fd"
"""md5 of VOCtrainval_11-May-2012.tar as published on the PASCAL VOC 2012 page."""
SBD_TGZ_MD5 = "82b4d87ceb2ed10f6038a1cba92111cb"
"""md5 of benchmark.tgz as published on the SBD page (Hariharan et al., ICCV 2011)."""
TRAIN_AUG_SIZE = 10_582

_VOC_MEMBER = re.compile(r"(?:^|/)VOC2012/((?:JPEGImages|Annotations|SegmentationClass|ImageSets/Segmentation)/[^/]+)$")
_SBD_MEMBER = re.compile(r"(?:^|/)dataset/(cls/[^/]+\.mat|train\.txt|val\.txt)$")
_DONE = "prepare_voc.json"


@dataclass(frozen=True)
class PrepareResult:
    root: Path
    train_aug: int
    val: int
    summary: dict


def prepare_voc(voc: str | Path, sbd: str | Path, out: str | Path, *,
                expected_md5: dict[str, str] | None = None, verify: bool = True,
                progress: Callable[[str], None] | None = None) -> PrepareResult:
    """Extract VOC, convert SBD, write SegmentationClassAug and train_aug under ``out/VOC2012``.

    ``voc`` / ``sbd`` are the archives (checked against ``expected_md5`` = {"voc": ..., "sbd": ...},
    default the published sums) or extracted folders (not checked). ``verify=False`` skips the checksums,
    for repacked archives.
    """
    say = progress or log.info
    voc, sbd, out = Path(voc), Path(sbd), Path(out)
    sums = {"voc": VOC_TAR_MD5, "sbd": SBD_TGZ_MD5, **(expected_md5 or {})}
    root = out / "VOC2012"
    if (root / _DONE).is_file():
        say(f"{root} is already prepared ({_DONE} exists); delete that file to rebuild")
        return _result_from_summary(root)
    checked = {}
    for key, path in (("voc", voc), ("sbd", sbd)):
        if not path.exists():
            name = "VOCtrainval_11-May-2012.tar" if key == "voc" else "benchmark.tgz (SBD)"
            raise DataError(f"{name} not found", path=path, fix=f"download {name} or pass its path")
        if path.is_file() and verify:
            say(f"checking the md5 of {path.name}")
            checked[key] = _verify_md5(path, sums[key], out / ".woodseg-prepare")

    _extract_voc(voc, root, say)
    seg_sets = {s: read_id_list(root / "ImageSets/Segmentation" / f"{s}.txt") for s in ("train", "val")}
    voc_seg = set(seg_sets["train"]) | set(seg_sets["val"])
    sbd_lists = _convert_sbd(sbd, root / "SegmentationClassAug", skip=voc_seg, say=say)

    val = seg_sets["val"]
    train_aug = sorted((set(sbd_lists["train"]) | set(sbd_lists["val"]) | set(seg_sets["train"])) - set(val))
    say("writing VOC's own masks into SegmentationClassAug")
    for image_id in sorted(voc_seg):
        dst = root / "SegmentationClassAug" / f"{image_id}.png"
        if not dst.is_file():
            src = root / "SegmentationClass" / f"{image_id}.png"
            if not src.is_file():
                raise DataError("VOC lists this image for segmentation but has no mask", path=src,
                                fix="the VOC tar is incomplete: download it again")
            save_palette_png(dst, _read_index_png(src))
    atomic_write_text(root / "ImageSets/SegmentationAug/train_aug.txt", "\n".join(train_aug) + "\n")

    summary = _check_and_summarise(root, train_aug, val, checked)
    if checked.keys() == {"voc", "sbd"} and len(train_aug) != TRAIN_AUG_SIZE:
        log.warning("train_aug has %d images, not the usual %d", len(train_aug), TRAIN_AUG_SIZE)
    atomic_write_json(root / _DONE, summary)
    shutil.rmtree(out / ".woodseg-prepare", ignore_errors=True)
    say(f"prepared {root}: train_aug {len(train_aug)} images, val {len(val)}")
    return PrepareResult(root, len(train_aug), len(val), summary)


def _result_from_summary(root: Path) -> PrepareResult:
    summary = json.loads((root / _DONE).read_text(encoding="utf-8"))
    return PrepareResult(root, summary["splits"]["train_aug"], summary["splits"]["val"], summary)


def md5sum(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _verify_md5(path: Path, expected: str, state: Path) -> str:
    """Check an archive's md5; a match is remembered (by size and mtime) so a resumed run skips it."""
    st = path.stat()
    stamp = state / f"{path.name}.md5"
    key = f"{st.st_size} {st.st_mtime_ns} {expected}"
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == key:
        return expected
    got = md5sum(path)
    if got != expected:
        raise DataError(f"md5 {got} does not match the published {expected}", path=path,
                        fix="download the archive again (it is truncated or altered); for a repacked archive "
                            "you trust, pass --no-verify")
    atomic_write_text(stamp, key)
    return got


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r|*")  # streamed: one pass, works for .tar and .tgz alike
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"not a readable tar archive ({exc})", path=path, fix="download it again") from exc


def _members(path: Path, pattern: re.Pattern[str]) -> Iterator[tuple[str, IO[bytes]]]:
    """(relative name, file object) for the regular files of an archive whose name matches ``pattern``."""
    tar = _open_tar(path)
    try:
        for m in tar:
            if not m.isfile():
                continue
            hit = pattern.search(m.name)
            if hit is None:
                continue
            rel = hit.group(1)
            if rel.startswith("/") or ".." in Path(rel).parts:
                raise DataError(f"archive member '{m.name}' points outside its folder", path=path,
                                fix="use the published archive")
            fh = tar.extractfile(m)
            if fh is not None:
                yield rel, fh
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"archive is truncated or corrupt ({exc})", path=path, fix="download it again") from exc
    finally:
        tar.close()


def _extract_voc(voc: Path, root: Path, say: Callable[[str], None]) -> None:
    """JPEGImages, Annotations, SegmentationClass, ImageSets/Segmentation into ``root`` (resumable)."""
    if voc.is_dir():
        src = _find_voc_dir(voc)
        for sub in ("JPEGImages", "Annotations", "SegmentationClass", "ImageSets/Segmentation"):
            if not (src / sub).is_dir():
                raise DataError(f"no {sub}/ in the VOC folder", path=src, fix="point --voc at VOCdevkit/VOC2012")
            if src.resolve() != root.resolve():
                dst = root / sub
                dst.mkdir(parents=True, exist_ok=True)
                for f in (src / sub).iterdir():
                    if f.is_file() and not (dst / f.name).exists():
                        _link_or_copy(f, dst / f.name)
        return
    marker = root / ".woodseg-extracted"
    if marker.is_file():
        return
    say(f"extracting {voc.name} (JPEGImages, Annotations, SegmentationClass, ImageSets/Segmentation)")
    n = 0
    for rel, fh in _members(voc, _VOC_MEMBER):
        dst = root / rel
        if not dst.is_file():
            with atomic_path(dst) as tmp, open(tmp, "wb") as out:
                shutil.copyfileobj(fh, out)
        n += 1
    if not (root / "ImageSets/Segmentation/val.txt").is_file() or not (root / "JPEGImages").is_dir():
        raise DataError("archive holds no VOC2012/JPEGImages or ImageSets/Segmentation/val.txt", path=voc,
                        fix="pass the VOC 2012 trainval tar (VOCtrainval_11-May-2012.tar)")
    atomic_write_text(marker, f"{n}\n")


def _find_voc_dir(path: Path) -> Path:
    for cand in (path, path / "VOC2012", path / "VOCdevkit" / "VOC2012"):
        if (cand / "JPEGImages").is_dir():
            return cand
    raise DataError("no JPEGImages/ in the VOC folder", path=path, fix="point --voc at VOCdevkit/VOC2012")


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _convert_sbd(sbd: Path, dst: Path, *, skip: set[str], say: Callable[[str], None]) -> dict[str, list[str]]:
    """Write SBD's class masks as index PNGs (except ids in ``skip``); return SBD's train/val id lists."""
    lists: dict[str, list[str]] = {}
    say(f"converting SBD masks from {sbd.name}")
    if sbd.is_dir():
        base = next((c for c in (sbd, sbd / "dataset", sbd / "benchmark_RELEASE" / "dataset")
                     if (c / "cls").is_dir()), None)
        if base is None:
            raise DataError("no cls/ folder in the SBD folder", path=sbd, fix="point --sbd at benchmark_RELEASE")
        for name in ("train", "val"):
            lists[name] = _sbd_list((base / f"{name}.txt").read_bytes() if (base / f"{name}.txt").is_file()
                                    else None, base / f"{name}.txt")
        for image_id in sorted(set(lists["train"]) | set(lists["val"])):
            if image_id not in skip and not (dst / f"{image_id}.png").is_file():
                mat = base / "cls" / f"{image_id}.mat"
                if not mat.is_file():
                    raise DataError("SBD lists this image but has no class mask", path=mat,
                                    fix="the SBD folder is incomplete: extract benchmark.tgz again")
                with open(mat, "rb") as fh:
                    save_palette_png(dst / f"{image_id}.png", read_sbd_mat(fh, mat))
        return lists
    seen: set[str] = set()
    for rel, fh in _members(sbd, _SBD_MEMBER):
        if rel.endswith(".txt"):
            lists[rel[:-4]] = _sbd_list(fh.read(), Path(sbd.name) / rel)
            continue
        image_id = Path(rel).stem
        seen.add(image_id)
        if image_id not in skip and not (dst / f"{image_id}.png").is_file():
            save_palette_png(dst / f"{image_id}.png", read_sbd_mat(fh, Path(sbd.name) / rel))
    for name in ("train", "val"):
        if name not in lists:
            raise DataError(f"archive has no benchmark_RELEASE/dataset/{name}.txt", path=sbd,
                            fix="pass the SBD release benchmark.tgz")
    missing = sorted((set(lists["train"]) | set(lists["val"])) - seen)
    if missing:
        raise DataError(f"{len(missing)} images SBD lists have no cls/<id>.mat (first: {missing[:3]})", path=sbd,
                        fix="download benchmark.tgz again")
    return lists


def _sbd_list(data: bytes | None, where: Path) -> list[str]:
    if data is None:
        raise DataError("SBD split list is missing", path=where, fix="extract benchmark.tgz again")
    return [ln.strip() for ln in data.decode("utf-8").splitlines() if ln.strip()]


def read_sbd_mat(fh: IO[bytes], where: Path) -> np.ndarray:
    """``GTcls.Segmentation`` of an SBD ``cls/<id>.mat``: uint8 HxW, 0 background, 1..20 the VOC classes."""
    from scipy.io import loadmat

    try:  # loadmat seeks; a streamed archive member cannot: read it into memory (a mask is ~200 kB)
        mat = loadmat(io.BytesIO(fh.read()), squeeze_me=True, struct_as_record=False)
        seg = np.asarray(mat["GTcls"].Segmentation)
    except (KeyError, AttributeError, ValueError, TypeError, OSError) as exc:
        raise DataError(f"not an SBD class mask (GTcls.Segmentation): {exc}", path=where,
                        fix="download benchmark.tgz again") from exc
    if seg.ndim != 2 or seg.size == 0 or seg.max() > len(VOC_CLASSES):
        raise DataError(f"SBD mask has shape {seg.shape} or values above {len(VOC_CLASSES)}", path=where,
                        fix="download benchmark.tgz again")
    return seg.astype(np.uint8)


def _read_index_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        if im.mode != "P":
            raise DataError(f"VOC mask is mode {im.mode}, not a palette PNG", path=path,
                            fix="use SegmentationClass from the VOC 2012 tar")
        return np.asarray(im, dtype=np.uint8)


def _check_and_summarise(root: Path, train_aug: list[str], val: list[str], checked: dict[str, str]) -> dict:
    """Every listed image has its JPEG, XML labels and mask; count images per class from the XML."""
    summary: dict = {"splits": {"train_aug": len(train_aug), "val": len(val)}, "md5_verified": checked,
                     "classes": {}}
    for split, ids in (("train_aug", train_aug), ("val", val)):
        for image_id in ids:
            for path in (root / "JPEGImages" / f"{image_id}.jpg", root / "Annotations" / f"{image_id}.xml",
                         root / "SegmentationClassAug" / f"{image_id}.png"):
                if not path.is_file():
                    raise DataError(f"split {split} lists image {image_id} but this file is missing", path=path,
                                    fix="the archives are incomplete: download them again")
        labels = _labels_from_xml(root / "Annotations", ids, VOC_CLASSES)
        empty = [i for i in ids if labels[i].sum() == 0]
        if empty:
            raise DataError(f"{len(empty)} images of {split} have no VOC object in their XML (first: {empty[:3]})",
                            path=root / "Annotations", fix="the VOC tar is altered: download it again")
        counts = np.stack([labels[i] for i in ids]).sum(0).astype(int)
        summary["classes"][split] = dict(zip(VOC_CLASSES, counts.tolist(), strict=True))
    return summary
