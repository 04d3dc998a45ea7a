"""Label-folder evaluation and the ``eval_predictions`` stage on prediction folders the test writes itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import CLASSES, tiny_overrides
from woodseg.config import load_config
from woodseg.data.build import load_dataset
from woodseg.data.images import load_mask
from woodseg.data.palette import save_palette_png
from woodseg.errors import DataError
from woodseg.evaluate.labels import class_scores
from woodseg.evaluate.metrics import confusion
from woodseg.evaluate.products import eval_predictions_stage
from woodseg.runtime.paths import RunPaths


def _write_predictions(folder, ds, split, index, change=None):
    folder.mkdir(parents=True)
    for image_id in ds.ids(split):
        labels = load_mask(ds.mask_path(image_id)).copy()
        labels[labels == 255] = 0
        if change:
            labels = change(labels)
        save_palette_png(folder / f"{image_id}.png", labels)
    (folder / "index.json").write_text(json.dumps(index))


def test_class_scores_by_hand():
    gt = np.array([0, 0, 1, 1, 2, 255])
    pred = np.array([0, 1, 1, 1, 2, 2])
    s = class_scores(confusion(gt, pred, 4), ["background", *CLASSES])
    assert s["per_class_iou"] == {"background": 0.5, "disc": 2 / 3, "bar": 1.0, "ring": None}
    assert s["miou"] == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert s["per_class_precision"]["background"] == 1.0 and s["per_class_recall"]["background"] == 0.5


def test_eval_predictions_judges_each_folder_with_its_protocol(tiny_voc, tmp_path):
    cfg = load_config(None, tiny_overrides(tiny_voc, tmp_path / "run"))
    ds = load_dataset(cfg.data)
    root = RunPaths.of(cfg).root / "predictions"
    made = {"classes": list(CLASSES), "scales": [1.0, 0.5], "flip": True, "crf": False, "inputs": {"segmenter": "ab"}}
    _write_predictions(root / "val", ds, "val", made)
    _write_predictions(root / "val-crf", ds, "val", {**made, "crf": True}, change=lambda m: np.zeros_like(m))
    res = eval_predictions_stage(cfg, progress=False)
    assert res["val"]["scores"]["miou"] == 1.0
    crf = res["val-crf"]
    assert crf["protocol"]["crf"] is True and crf["scores"]["per_class_iou"]["disc"] == 0.0
    saved = json.loads((tmp_path / "run" / "eval" / "predictions-val.json").read_text())
    p = saved["val"]["protocol"]
    assert (p["split"], p["n_images"], p["scales"], p["crf"]) == ("val", 8, [1.0, 0.5], False)
    assert p["inputs"] == {"segmenter": "ab"} and "inputs" not in p["made_with"]

    # unchanged: read back; a changed folder (its index) is judged again
    out = tmp_path / "run" / "eval" / "predictions-val.json"
    stamp = out.stat().st_mtime_ns
    eval_predictions_stage(cfg, progress=False)
    assert out.stat().st_mtime_ns == stamp
    victim = sorted((root / "val").glob("*.png"))[0]
    save_palette_png(victim, np.full(load_mask(victim).shape, 7, np.uint8))
    (root / "val" / "index.json").write_text(json.dumps({**made, "inputs": {"segmenter": "cd"}}))
    with pytest.raises(DataError, match="outside 0..3"):
        eval_predictions_stage(cfg, progress=False)

    (root / "val" / "index.json").write_text(json.dumps({**made, "classes": ["a", "b", "c"]}))
    with pytest.raises(DataError, match="made for classes"):
        eval_predictions_stage(cfg, progress=False, restart=True)


def test_missing_predictions_are_named(tiny_voc, tmp_path):
    cfg = load_config(None, tiny_overrides(tiny_voc, tmp_path / "run"))
    with pytest.raises(DataError, match="no predictions yet"):
        eval_predictions_stage(cfg, progress=False)
    ds = load_dataset(cfg.data)
    folder = tmp_path / "run" / "predictions" / "val"
    _write_predictions(folder, ds, "val", {"classes": list(CLASSES)})
    gone = sorted(folder.glob("*.png"))[2]
    gone.unlink()
    with pytest.raises(DataError, match=f"missing: \\['{gone.stem}'\\]"):
        eval_predictions_stage(cfg, progress=False)
