"""`woodseg data prepare-voc` on tiny VOC and SBD archives the test builds."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat
from typer.testing import CliRunner

from woodseg.cli import app
from woodseg.data.images import load_mask
from woodseg.data.palette import voc_palette
from woodseg.data.prepare_voc import md5sum, prepare_voc
from woodseg.data.voc import read_voc
from woodseg.errors import DataError

# VOC segmentation train/val, SBD train/val; other ids are VOC detection-only images.
VOC_TRAIN, VOC_VAL = ["2007_000032", "2007_000039"], ["2007_000033", "2007_000042"]
SBD_TRAIN, SBD_VAL = ["2008_000002", "2007_000033", "2008_000003"], ["2008_000008", "2007_000032"]
CLASS_OF = {"2007_000032": 1, "2007_000039": 15, "2007_000033": 5, "2007_000042": 12, "2008_000002": 7,
            "2008_000003": 20, "2008_000008": 9, "2008_000010": 3}


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _png(arr: np.ndarray, palette: bool) -> bytes:
    im = Image.fromarray(arr, mode="P" if palette else "RGB")
    if palette:
        im.putpalette(voc_palette().reshape(-1).tolist())
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _mask(image_id: str, border: bool) -> np.ndarray:
    m = np.zeros((12, 16), np.uint8)
    m[3:9, 4:12] = CLASS_OF[image_id]
    if border:
        m[2, 3:13] = 255
    return m


def _xml(image_id: str) -> bytes:
    name = ("aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike person "
            "pottedplant sheep sofa train tvmonitor").split()[CLASS_OF[image_id] - 1]
    return (f"<annotation><filename>{image_id}.jpg</filename><object><name>{name}</name>"
            f"<part><name>head</name></part></object></annotation>").encode()


def make_voc_tar(path: Path, drop_mask: str | None = None) -> Path:
    with tarfile.open(path, "w") as tar:
        base = "VOCdevkit/VOC2012/"
        for image_id in CLASS_OF:
            _add(tar, f"{base}JPEGImages/{image_id}.jpg", _jpeg())
            _add(tar, f"{base}Annotations/{image_id}.xml", _xml(image_id))
        for image_id in VOC_TRAIN + VOC_VAL:
            if image_id != drop_mask:
                _add(tar, f"{base}SegmentationClass/{image_id}.png", _png(_mask(image_id, True), True))
        _add(tar, f"{base}ImageSets/Segmentation/train.txt", ("\n".join(VOC_TRAIN) + "\n").encode())
        _add(tar, f"{base}ImageSets/Segmentation/val.txt", ("\n".join(VOC_VAL) + "\n").encode())
        _add(tar, f"{base}ImageSets/Segmentation/trainval.txt", ("\n".join(VOC_TRAIN + VOC_VAL) + "\n").encode())
        _add(tar, f"{base}ImageSets/Main/train.txt", b"ignored\n")
    return path


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((12, 16, 3), 128, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def make_sbd_tgz(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        base = "benchmark_RELEASE/dataset/"
        for image_id in sorted(set(SBD_TRAIN + SBD_VAL)):
            buf = io.BytesIO()
            seg = _mask(image_id, False)
            savemat(buf, {"GTcls": {"Segmentation": seg, "Boundaries": np.zeros(1), "CategoriesPresent": 1}})
            _add(tar, f"{base}cls/{image_id}.mat", buf.getvalue())
        _add(tar, f"{base}train.txt", ("\n".join(SBD_TRAIN) + "\n").encode())
        _add(tar, f"{base}val.txt", ("\n".join(SBD_VAL) + "\n").encode())
        _add(tar, f"{base}img/2008_000002.jpg", _jpeg())
    return path


@pytest.fixture()
def archives(tmp_path):
    return make_voc_tar(tmp_path / "voc.tar"), make_sbd_tgz(tmp_path / "benchmark.tgz")


def _sums(voc: Path, sbd: Path) -> dict[str, str]:
    return {"voc": md5sum(voc), "sbd": md5sum(sbd)}


def test_prepare_builds_train_aug_masks_and_labels(archives, tmp_path):
    voc, sbd = archives
    res = prepare_voc(voc, sbd, tmp_path / "out", expected_md5=_sums(voc, sbd))
    root = tmp_path / "out" / "VOC2012"
    # (SBD train + SBD val + VOC train) - VOC val
    expected = sorted({"2008_000002", "2008_000003", "2008_000008", "2007_000032", "2007_000039"})
    assert (root / "ImageSets/SegmentationAug/train_aug.txt").read_text().split() == expected
    assert res.train_aug == 5 and res.val == 2
    assert res.summary["md5_verified"] == _sums(voc, sbd)
    # VOC's own mask wins (its 255 border kept) even where SBD has one; SBD's is used for the others
    assert (load_mask(root / "SegmentationClassAug/2007_000032.png") == _mask("2007_000032", True)).all()
    assert (load_mask(root / "SegmentationClassAug/2008_000003.png") == _mask("2008_000003", False)).all()
    with Image.open(root / "SegmentationClassAug/2008_000003.png") as im:
        assert im.mode == "P"
    for image_id in VOC_VAL:  # val masks are in SegmentationClassAug too
        assert (root / f"SegmentationClassAug/{image_id}.png").is_file()
    # the repo's reader takes it as is: labels from the XML, splits and masks
    ds = read_voc(root)
    assert ds.ids("train_aug") == expected and ds.ids("val") == VOC_VAL
    assert ds.has_masks("train_aug") and ds.has_masks("val")
    assert ds.label("2008_000003").argmax() == 19 and ds.label("2008_000003").sum() == 1
    assert res.summary["classes"]["train_aug"]["tvmonitor"] == 1
    assert not (tmp_path / "out" / ".woodseg-prepare").exists()


def test_prepare_resumes_and_skips_finished_work(archives, tmp_path):
    voc, sbd = archives
    out = tmp_path / "out"
    prepare_voc(voc, sbd, out, expected_md5=_sums(voc, sbd))
    root = out / "VOC2012"
    stamp = (root / "SegmentationClassAug/2008_000003.png").stat().st_mtime_ns
    (root / "prepare_voc.json").unlink()  # as if interrupted before the end
    (root / "SegmentationClassAug/2008_000002.png").unlink()
    prepare_voc(voc, sbd, out, expected_md5=_sums(voc, sbd))
    assert (root / "SegmentationClassAug/2008_000002.png").is_file()
    assert (root / "SegmentationClassAug/2008_000003.png").stat().st_mtime_ns == stamp
    # finished: a third run only reads the summary, so the published sums (which these fail) are not checked
    res = prepare_voc(voc, sbd, out)
    assert res.train_aug == 5


def test_checksum_mismatch_names_the_archive_and_the_fix(archives, tmp_path):
    voc, sbd = archives
    with pytest.raises(DataError, match="does not match the published 6cd6e144") as exc:
        prepare_voc(voc, sbd, tmp_path / "out")  # the published sums: a tiny archive fails them
    assert exc.value.path == voc and "--no-verify" in exc.value.fix
    assert not (tmp_path / "out" / "VOC2012").exists()
    res = prepare_voc(voc, sbd, tmp_path / "out", verify=False)
    assert res.train_aug == 5 and res.summary["md5_verified"] == {}


def test_missing_and_broken_inputs_are_clear_errors(archives, tmp_path):
    voc, sbd = archives
    with pytest.raises(DataError, match="not found") as exc:
        prepare_voc(tmp_path / "nope.tar", sbd, tmp_path / "o1", verify=False)
    assert exc.value.path == tmp_path / "nope.tar"
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar at all" * 10)
    with pytest.raises(DataError, match="tar"):
        prepare_voc(bad, sbd, tmp_path / "o2", verify=False)
    holed = make_voc_tar(tmp_path / "holed.tar", drop_mask="2007_000039")
    with pytest.raises(DataError, match="no mask") as exc:
        prepare_voc(holed, sbd, tmp_path / "o3", verify=False)
    assert exc.value.path.name == "2007_000039.png"
    with pytest.raises(DataError, match="train.txt"):
        prepare_voc(voc, voc, tmp_path / "o4", verify=False)  # the VOC tar passed as SBD


def test_extracted_folders_work_too(archives, tmp_path):
    voc, sbd = archives
    ext = tmp_path / "ext"
    for arc in (voc, sbd):
        with tarfile.open(arc) as tar:
            tar.extractall(ext, filter="data")
    res = prepare_voc(ext / "VOCdevkit", ext / "benchmark_RELEASE", tmp_path / "out")
    assert res.train_aug == 5 and res.summary["md5_verified"] == {}


def test_cli_prepare_voc(archives, tmp_path):
    voc, sbd = archives
    result = CliRunner().invoke(app, ["data", "prepare-voc", "--voc", str(voc), "--sbd", str(sbd),
                                      "--out", str(tmp_path / "out"), "--no-verify"])
    assert result.exit_code == 0, result.output
    assert "train_aug: 5 images" in result.output and "data.train_split=train_aug" in result.output
