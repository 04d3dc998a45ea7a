"""Metrics against scikit-learn, and the one-pass threshold sweep against a direct computation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, jaccard_score, precision_score, recall_score

from woodseg.evaluate.metrics import confusion, scores
from woodseg.evaluate.seeds import seed_label_map, sweep_confusions


@pytest.mark.parametrize("seed", range(4))
def test_confusion_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 6, (40, 30))
    gt[rng.random(gt.shape) < 0.1] = 255
    pred = rng.integers(0, 6, (40, 30))
    keep = gt != 255
    ours = confusion(gt, pred, 6)
    ref = confusion_matrix(gt[keep], pred[keep], labels=list(range(6)))
    np.testing.assert_array_equal(ours, ref)
    s = scores(ours)
    np.testing.assert_allclose(s.iou, jaccard_score(gt[keep], pred[keep], labels=list(range(6)), average=None))
    np.testing.assert_allclose(s.precision, precision_score(gt[keep], pred[keep], labels=list(range(6)),
                                                            average=None, zero_division=0))
    np.testing.assert_allclose(s.recall, recall_score(gt[keep], pred[keep], labels=list(range(6)), average=None,
                                                      zero_division=0))


def test_f1_is_harmonic_mean_of_mean_precision_and_recall():
    # The paper's Table 1: F1 from *mean* P and R, e.g. 61.9 / 72.7 -> 66.9.
    conf = np.array([[50, 10, 0], [5, 20, 5], [0, 10, 30]])
    s = scores(conf)
    p, r = s.precision.mean(), s.recall.mean()
    assert s.f1 == pytest.approx(2 * p * r / (p + r))
    per_class_f1 = np.mean(2 * s.precision * s.recall / (s.precision + s.recall))
    assert s.f1 != pytest.approx(per_class_f1)


def test_absent_classes_are_nan_and_ignored_in_the_mean():
    conf = np.zeros((4, 4), np.int64)
    conf[0, 0], conf[1, 1], conf[1, 0] = 10, 5, 5
    s = scores(conf)
    assert np.isnan(s.iou[2]) and np.isnan(s.iou[3])
    assert s.miou == pytest.approx(np.mean([10 / 15, 5 / 10]))


def test_ignore_pixels_are_left_out():
    gt = np.array([[0, 1], [255, 1]])
    pred = np.array([[0, 1], [1, 0]])
    np.testing.assert_array_equal(confusion(gt, pred, 2), [[1, 0], [1, 1]])


@pytest.mark.parametrize("seed", range(5))
def test_sweep_matches_direct_thresholding(seed):
    rng = np.random.default_rng(seed)
    n_classes = 5
    keys = np.sort(rng.choice(n_classes, size=2, replace=False))
    high = rng.random((2, 24, 20)).astype(np.float32)
    thr = np.round(np.arange(0.05, 0.95, 0.05), 2)
    high[0, 0, :4] = thr[3]  # exact ties with a threshold go to background
    gt = rng.integers(0, n_classes + 1, (24, 20))
    gt[0, 5] = 255
    got = sweep_confusions(gt, high, keys, thr, n_classes + 1)
    for j, t in enumerate(thr):
        direct = confusion(gt, seed_label_map(high, keys, t), n_classes + 1)
        np.testing.assert_array_equal(got[j], direct)


def test_seed_label_map_ties_go_to_background():
    high = np.array([[[0.2, 0.3]], [[0.1, 0.2]]], np.float32)
    keys = np.array([4, 7])
    np.testing.assert_array_equal(seed_label_map(high, keys, 0.2), [[0, 5]])
    np.testing.assert_array_equal(seed_label_map(high, np.array([], np.int64)[:0], 0.2)[None][0].shape, (1, 2))


def test_image_without_classes_is_all_background():
    gt = np.array([[0, 1]])
    got = sweep_confusions(gt, np.zeros((0, 1, 2), np.float32), np.array([], np.int64), np.array([0.1, 0.2]), 3)
    np.testing.assert_array_equal(got[0], [[1, 0, 0], [1, 0, 0], [0, 0, 0]])


# ---- a seed whose size differs from its mask: say why -------------------------------------------------------


def _one_image_voc(tmp_path, orientation: int):
    from PIL import Image

    from woodseg.data.palette import save_palette_png
    from woodseg.data.voc import read_voc

    root = tmp_path / "voc"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", (64, 48), (90, 90, 90)).save(root / "JPEGImages" / "a.jpg", exif=exif)  # stored 48 x 64
    save_palette_png(root / "SegmentationClass" / "a.png", np.ones((48, 64), np.uint8))
    (root / "ImageSets/Segmentation/train.txt").write_text("a\n")
    (root / "classes.txt").write_text("thing\n")
    return read_voc(root)


def _seed(tmp_path, h: int, w: int):
    from woodseg.seeds.store import Seed, save_seed

    folder = tmp_path / "cams"
    save_seed(folder / "a.npz", Seed(np.array([0]), np.zeros((1, 1, 1), np.float32), np.ones((1, h, w), np.float32),
                                     np.array([1.0]), (h, w)))
    return folder


def test_exif_rotated_image_is_named_as_the_cause_not_restart(tmp_path):
    from woodseg.errors import DataError
    from woodseg.evaluate.seeds import evaluate_seeds

    ds = _one_image_voc(tmp_path, orientation=6)
    with pytest.raises(DataError) as exc:
        evaluate_seeds(ds, "train", _seed(tmp_path, 64, 48), [0.5])  # seeds follow the displayed (turned) image
    msg = str(exc.value)
    assert "EXIF rotation (orientation 6)" in msg and "a.jpg" in msg and "a.png" in msg
    assert "Orientation" in exc.value.fix and not exc.value.fix.startswith("remake")


def test_other_size_mismatch_keeps_the_general_message(tmp_path):
    from woodseg.errors import DataError
    from woodseg.evaluate.seeds import evaluate_seeds

    ds = _one_image_voc(tmp_path, orientation=1)
    with pytest.raises(DataError) as exc:
        evaluate_seeds(ds, "train", _seed(tmp_path, 40, 40), [0.5])
    assert "seed is (40, 40)" in str(exc.value) and "EXIF" not in str(exc.value)


def test_sweep_compares_in_the_seed_precision_like_the_label_map():
    """float32(0.1) > 0.1: a float32 score equal to it is background at 0.1 for the label map (float32
    comparison), and so it must be for the sweep (it compared in float64 and called it foreground)."""
    thr = np.round(np.arange(0.05, 0.81, 0.01), 2)
    assert float(np.float32(0.1)) > 0.1
    high = np.full((1, 2, 2), np.float32(0.1), np.float32)
    gt = np.ones((2, 2), np.int64)
    got = sweep_confusions(gt, high, np.array([0]), thr, 2)
    j = int(np.flatnonzero(thr == 0.1)[0])
    np.testing.assert_array_equal(got[j], confusion(gt, seed_label_map(high, np.array([0]), 0.1), 2))
    assert got[j][1, 0] == 4
