"""report/refined.py: the Table 2 row and held-out segmentation read from a run folder, and the mask overlays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from woodseg.errors import DataError
from woodseg.report.refined import mask_overlay_row, refined_results


def _scores(miou: float) -> dict[str, float]:
    return {"miou": miou, "precision": miou + 0.1, "recall": miou + 0.2, "f1": miou + 0.15}


def _labels_protocol(what: str, split: str, crf: bool) -> dict:
    return {"what": what, "split": split, "n_images": 3, "crf": crf}


def _write_run(folder, *, masks: bool = True) -> None:
    ev = folder / "eval"
    ev.mkdir(parents=True)
    seed_protocol = {"split": "train", "n_images": 3, "method": "cam", "scales": [1.0], "flip": True,
                     "threshold_selection": "best mIoU over 2 thresholds on split train", "crf": False}
    (ev / "seeds.json").write_text(json.dumps({"train": {"protocol": seed_protocol,
                                                         "best": {**_scores(0.2), "threshold": 0.3}}}))
    (ev / "seeds-crf.json").write_text(json.dumps({"train": {
        "protocol": _labels_protocol("seed + CRF", "train", True), "scores": _scores(0.25)}}))
    if masks:
        (ev / "masks.json").write_text(json.dumps({"train": {
            "protocol": _labels_protocol("pseudo masks", "train", False), "scores": _scores(0.3)}}))
    (ev / "predictions-val.json").write_text(json.dumps({"val": {
        "protocol": _labels_protocol("segmentation predictions", "val", False), "scores": _scores(0.35)}}))


def test_refined_results_reads_the_table2_row_and_the_heldout_segmentation(tmp_path) -> None:
    _write_run(tmp_path / "run")
    r = refined_results(tmp_path / "run", "train", "val")
    t2 = r["table2"]
    assert t2["split"] == "train"
    assert [t2[k]["miou"] for k in ("seed", "crf", "mask")] == [0.2, 0.25, 0.3]
    assert "threshold 0.30" in t2["seed"]["protocol"] and "CRF on" in t2["crf"]["protocol"]
    assert set(r["segmentation"]) == {"val"}  # no val-crf file: not invented
    assert r["segmentation"]["val"]["miou"] == 0.35 and "split val" in r["segmentation"]["val"]["protocol"]


def test_missing_masks_evaluation_names_the_file_and_the_fix(tmp_path) -> None:
    _write_run(tmp_path / "run", masks=False)
    with pytest.raises(DataError) as err:
        refined_results(tmp_path / "run", "train", "val")
    assert "masks.json" in str(err.value) and "woodseg run --from ir_labels" in str(err.value)


def test_missing_predictions_are_an_error_not_an_empty_row(tmp_path) -> None:
    _write_run(tmp_path / "run")
    with pytest.raises(DataError, match="no evaluated predictions of split 'test'"):
        refined_results(tmp_path / "run", "train", "test")


def test_mask_overlay_row_is_a_png() -> None:
    image = np.zeros((16, 20, 3), np.uint8)
    gt = np.zeros((16, 20), np.uint8)
    gt[4:10, 5:12] = 3
    maps = {"a": {"seed": gt, "mask": gt, "prediction": np.full_like(gt, 255)}}
    png = mask_overlay_row(image, gt, maps, ["background", "x", "y", "z"], "img0")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
