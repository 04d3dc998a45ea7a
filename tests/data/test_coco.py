"""COCO-2014 WSSS data: masks and labels from a tiny instances JSON the test writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from woodseg.cli import app
from woodseg.config import DataConfig, load_config
from woodseg.data.build import load_dataset
from woodseg.data.coco import COCO_CLASSES, annotation_mask, load_coco_api, prepare_coco, read_coco
from woodseg.data.images import load_mask
from woodseg.errors import DataError

pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils  # noqa: E402

CAT_IDS = [*range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66), 67, 70, *range(72, 83),
           *range(84, 91)]
PERSON, DOG, CAR, BOTTLE, TOOTHBRUSH = 1, 18, 3, 44, 90  # COCO category ids -> classes 1, 17, 3, 40, 80


def _box(x0: int, y0: int, x1: int, y1: int) -> list[list[float]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _crowd_rle(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> dict:
    m = np.zeros((h, w), np.uint8, order="F")
    m[y0:y1, x0:x1] = 1
    rle = mask_utils.encode(m)
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def write_tiny_coco(root: Path) -> tuple[Path, Path]:
    """train2014: a person with a dog on it and a crowd of cars; an image with no annotation. val2014: a bottle."""
    cats = [{"id": i, "name": n, "supercategory": "x"} for i, n in zip(CAT_IDS, COCO_CLASSES, strict=True)]
    h, w = 40, 60
    splits = {
        "train2014": ([(9, "COCO_train2014_000000000009.jpg"), (25, "COCO_train2014_000000000025.jpg")], [
            {"id": 1, "image_id": 9, "category_id": PERSON, "segmentation": _box(5, 5, 35, 35), "area": 900.0,
             "bbox": [5, 5, 30, 30], "iscrowd": 0},
            {"id": 2, "image_id": 9, "category_id": DOG, "segmentation": _box(10, 10, 20, 20), "area": 100.0,
             "bbox": [10, 10, 10, 10], "iscrowd": 0},
            {"id": 3, "image_id": 9, "category_id": CAR, "segmentation": _crowd_rle(h, w, 2, 38, 30, 55),
             "area": 900.0, "bbox": [30, 2, 25, 36], "iscrowd": 1},
        ]),
        "val2014": ([(42, "COCO_val2014_000000000042.jpg")], [
            {"id": 4, "image_id": 42, "category_id": BOTTLE, "segmentation": _box(20, 10, 30, 30), "area": 200.0,
             "bbox": [20, 10, 10, 20], "iscrowd": 0},
        ]),
    }
    ann_dir, img_root = root / "annotations", root / "images"
    ann_dir.mkdir(parents=True)
    for split, (images, anns) in splits.items():
        (img_root / split).mkdir(parents=True)
        for _, name in images:
            Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(img_root / split / name)
        doc = {"images": [{"id": i, "file_name": n, "height": h, "width": w} for i, n in images],
               "annotations": anns, "categories": cats}
        (ann_dir / f"instances_{split}.json").write_text(json.dumps(doc))
    return ann_dir, img_root


@pytest.fixture()
def tiny_coco(tmp_path):
    return write_tiny_coco(tmp_path / "src")


def test_prepare_writes_masks_labels_and_lists(tiny_coco, tmp_path):
    ann, images = tiny_coco
    out = tmp_path / "COCO14"
    summary = prepare_coco(ann, images, out)
    assert summary["splits"] == {"train2014": 2, "val2014": 1}
    assert summary["unlabelled"] == {"train2014": 1, "val2014": 0}
    m = load_mask(out / "SegmentationClass/train2014/COCO_train2014_000000000009.png")
    assert m.shape == (40, 60)
    assert m[15, 15] == 17          # the dog (smaller) lies on the person (larger): dog pixels stay dog
    assert m[30, 8] == 1            # person only
    assert m[30, 32] == 1           # person over the crowd of cars: the instance wins
    assert m[30, 45] == 255         # crowd only: ignored
    assert m[1, 1] == 0 and m[39, 58] == 0
    assert set(np.unique(load_mask(out / "SegmentationClass/train2014/COCO_train2014_000000000025.png"))) == {0}
    assert load_mask(out / "SegmentationClass/val2014/COCO_val2014_000000000042.png")[20, 25] == 40

    ds = read_coco(out)
    assert ds.class_names == COCO_CLASSES and ds.num_classes == 80
    assert ds.ids("train2014") == ["COCO_train2014_000000000009", "COCO_train2014_000000000025"]
    lab = ds.label("COCO_train2014_000000000009")
    assert np.flatnonzero(lab).tolist() == [0, 2, 16]  # person, car (crowd counts for the label), dog
    assert ds.label("COCO_train2014_000000000025").sum() == 0
    assert ds.label("COCO_val2014_000000000042").argmax() == 39
    assert ds.image_path("COCO_val2014_000000000042").is_file()
    assert ds.has_masks("train2014") and ds.has_masks("val2014")
    ds2 = load_dataset(DataConfig(format="coco", root=out))  # the config route
    assert ds2.ids("val2014") == ["COCO_val2014_000000000042"]


def test_worker_processes_write_the_same_masks(tiny_coco, tmp_path):
    ann, images = tiny_coco
    one, two = tmp_path / "one", tmp_path / "two"
    prepare_coco(ann, images, one)
    prepare_coco(ann, images, two, processes=2)
    pngs = sorted(p.relative_to(one) for p in one.glob("SegmentationClass/*/*.png"))
    assert len(pngs) == 3
    assert pngs == sorted(p.relative_to(two) for p in two.glob("SegmentationClass/*/*.png"))
    assert all(np.array_equal(load_mask(one / p), load_mask(two / p)) for p in pngs)


def test_annotation_mask_matches_the_coco_api_for_every_segmentation_form(tiny_coco):
    """Polygons, compressed RLE (the crowd) and uncompressed RLE, as pycocotools' COCO.annToMask draws them."""
    ann_dir, _ = tiny_coco
    coco = load_coco_api(ann_dir / "instances_train2014.json")
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[9], iscrowd=None))
    m = np.zeros((40, 60), np.uint8)
    m[3:9, 4:50] = 1
    flat = m.ravel(order="F")  # uncompressed RLE: run lengths in column-major order, starting with zeros
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    anns = [*anns, {"id": 9, "image_id": 9, "category_id": PERSON, "area": 276.0, "iscrowd": 1,
                    "segmentation": {"size": [40, 60], "counts": runs}}]
    forms = sorted("polygons" if isinstance(a["segmentation"], list) else
                   "uncompressed RLE" if isinstance(a["segmentation"]["counts"], list) else "compressed RLE"
                   for a in anns)
    assert forms == ["compressed RLE", "polygons", "polygons", "uncompressed RLE"]
    for a in anns:
        assert np.array_equal(annotation_mask(a, 40, 60), coco.annToMask(a)), a["id"]
    assert np.array_equal(annotation_mask(anns[-1], 40, 60), m)


def test_prepare_is_resumable_and_labels_fall_back_to_json_then_masks(tiny_coco, tmp_path):
    ann, images = tiny_coco
    out = tmp_path / "COCO14"
    prepare_coco(ann, images, out)
    png = out / "SegmentationClass/train2014/COCO_train2014_000000000009.png"
    stamp = png.stat().st_mtime_ns
    (out / "prepare_coco.json").unlink()
    prepare_coco(ann, images, out)
    assert png.stat().st_mtime_ns == stamp  # finished masks are kept
    # without the npz labels, the JSON under annotations/ gives them; without that, the masks
    (out / "cls_labels_train2014.npz").unlink()
    (out / "annotations").symlink_to(ann, target_is_directory=True)
    assert np.flatnonzero(read_coco(out).label("COCO_train2014_000000000009")).tolist() == [0, 2, 16]
    (out / "annotations").unlink()
    assert np.flatnonzero(read_coco(out).label("COCO_train2014_000000000009")).tolist() == [0, 16]


def test_bad_inputs_are_clear_errors(tiny_coco, tmp_path, monkeypatch):
    ann, images = tiny_coco
    with pytest.raises(DataError, match="no val2014/ image folder"):
        prepare_coco(ann, tmp_path / "nowhere", tmp_path / "o1", splits=("val2014",))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataError, match="not a COCO instances JSON") as exc:
        load_coco_api(broken)
    assert exc.value.path == broken
    doc = json.loads((ann / "instances_val2014.json").read_text())
    doc["categories"] = doc["categories"][:20]
    (ann / "instances_val2014.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="not COCO's 80"):
        prepare_coco(ann, images, tmp_path / "o2", splits=("val2014",))
    monkeypatch.setitem(sys.modules, "pycocotools.coco", None)
    with pytest.raises(DataError, match="pycocotools") as exc:
        load_coco_api(ann / "instances_val2014.json")
    assert "woodseg[coco]" in exc.value.fix
    with pytest.raises(DataError, match="JPEGImages"):
        read_coco(tmp_path)


def test_cli_and_bundled_configs(tiny_coco, tmp_path):
    ann, images = tiny_coco
    out = tmp_path / "COCO14"
    result = CliRunner().invoke(app, ["data", "prepare-coco", "--annotations", str(ann), "--images-root",
                                      str(images), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "train2014: 2 images (1 with no annotation)" in result.output
    for name in ("coco14_cam_r50", "coco14_wood-official_r50"):
        cfg = load_config(name, [f"data.root={out}"])
        assert cfg.data.format == "coco" and cfg.data.train_split == "train2014"
        ds = load_dataset(cfg.data)
        assert ds.check_split(cfg.data.seed_split, need_masks=True)
        assert ds.check_split(cfg.data.heldout_split, need_masks=True)
    assert load_config("coco14_wood-official_r50").wood.variant == "official"


def test_train_cam_eval_run_on_coco_format(tiny_coco, tmp_path):
    ann, images = tiny_coco
    prepare_coco(ann, images, tmp_path / "COCO14")
    over = [f"data.root={tmp_path / 'COCO14'}", f"out_dir={tmp_path / 'run'}", "model.backbone=resnet10",
            "model.weights=null", "model.freeze_bn=false", "model.frozen_stages=0", "model.channels_last=false",
            "train.epochs=1", "train.batch_size=2", "train.resize_long=[32,48]", "train.crop_size=32",
            "runtime.threads=1", "runtime.device=cpu", "runtime.workers=0", "cam.scales=[1.0]"]
    for cmd in ("train", "cam", "eval"):
        result = CliRunner().invoke(app, [cmd, "-c", "coco14_cam_r50", "-q", *over])
        assert result.exit_code == 0, (cmd, result.output)
    report = json.loads((tmp_path / "run" / "eval" / "seeds.json").read_text())
    assert report["train2014"]["protocol"]["n_images"] == 2 and report["val2014"]["protocol"]["n_images"] == 1
