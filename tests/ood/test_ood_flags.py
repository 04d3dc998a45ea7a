"""Likely-positive evidence: CAM compactness on hand-made maps, augmentation stability on a tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from woodseg.data.images import load_image
from woodseg.data.transforms import hwc_to_tensor, normalize, rescale, resize_long
from woodseg.models.cam_net import load_classifier
from woodseg.ood.flags import cam_compactness, compactness_from_cams, likely_positive, stability_scores


def _blob(h=16, w=16, cy=8, cx=8, r=2.0):
    y, x = np.mgrid[:h, :w]
    return np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))


def test_one_tight_blob_scores_high_diffuse_low():
    tight = cam_compactness(_blob())
    diffuse = cam_compactness(np.ones((16, 16)) + 0.01 * np.random.default_rng(0).random((16, 16)))
    two = cam_compactness(_blob(cx=3) + _blob(cx=12))
    scattered = cam_compactness(sum(_blob(cy=y, cx=x, r=1.0) for y in (2, 8, 13) for x in (2, 8, 13)))
    assert tight > 0.8
    assert diffuse < 0.05
    assert 0.3 < two < tight
    assert scattered < two
    assert 0.0 <= min(tight, diffuse, two, scattered) and max(tight, diffuse, two, scattered) <= 1.0


def test_absent_or_negative_activation_is_zero_and_input_checked():
    assert cam_compactness(np.zeros((4, 4))) == 0.0
    assert cam_compactness(-np.ones((4, 4))) == 0.0
    assert cam_compactness(np.full((4, 4), np.nan)) == 0.0
    with pytest.raises(ValueError, match="2-D"):
        cam_compactness(np.zeros((2, 4, 4)))


def test_compactness_from_cams_matches_per_map():
    cams = np.stack([np.stack([_blob(), -_blob()]), np.stack([np.ones((16, 16)), _blob(cx=4)])])
    out = compactness_from_cams(cams)
    assert out.shape == (2, 2)
    assert out[0, 0] == pytest.approx(cam_compactness(_blob()))
    assert out[0, 1] == 0.0


def test_likely_positive_threshold_and_nan():
    assert likely_positive(0.6, 0.5) is True and likely_positive(0.4, 0.5) is False
    np.testing.assert_array_equal(likely_positive(np.array([0.5, np.nan, 0.2])), [True, False, False])


def test_stability_is_the_min_over_views(checkpoint: Path, image_dir: Path):
    torch.manual_seed(0)
    model, names = load_classifier(checkpoint)
    model.eval()
    img = resize_long(load_image(image_dir / "img000.jpg"), 48)

    def probs(a):
        with torch.no_grad():
            return torch.sigmoid(model(hwc_to_tensor(a)[None])[0][0]).numpy()

    views = [normalize(img), normalize(img)[:, ::-1], normalize(rescale(img, 0.75)), normalize(rescale(img, 1.25))]
    expected = np.min([probs(v) for v in views], axis=0)
    got = stability_scores(model, img, len(names))
    np.testing.assert_allclose(got, expected, atol=2e-5)
    with_base = stability_scores(model, img, len(names), base_probs=probs(views[0]))
    np.testing.assert_allclose(with_base, expected, atol=2e-5)
    assert (got <= probs(views[0]) + 1e-6).all()
