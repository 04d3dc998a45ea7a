import sys

import numpy as np
import pytest

from woodseg.errors import ConfigError
from woodseg.refine import crf


def _scene(rng: np.random.Generator, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A red square on a blue background (mild noise) and its mask."""
    mask = np.zeros((size, size), dtype=np.int64)
    mask[12:36, 14:40] = 1
    image = np.where(mask[..., None] == 1, [200, 30, 30], [30, 40, 190]).astype(np.float64)
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def test_label_crf_moves_a_noisy_map_toward_the_mask() -> None:
    pytest.importorskip("pydensecrf.densecrf")
    rng = np.random.default_rng(0)
    image, mask = _scene(rng)
    flip = rng.random(mask.shape) < 0.25
    noisy = np.where(flip, 1 - mask, mask)
    out = crf.crf_labels(image, noisy, n_labels=2)
    assert out.shape == mask.shape and out.dtype == np.int64
    assert (noisy == mask).mean() < 0.8
    assert (out == mask).mean() > 0.98


def test_softmax_crf_sharpens_blurred_probabilities_to_the_image_edge() -> None:
    pytest.importorskip("pydensecrf.densecrf")
    rng = np.random.default_rng(1)
    image, mask = _scene(rng)
    # A square shifted by 3 px, soft everywhere: argmax is wrong on a band along two sides.
    p_fg = np.full(mask.shape, 0.35)
    p_fg[15:39, 17:43] = 0.65
    probs = np.stack([1 - p_fg, p_fg])
    before = (probs.argmax(0) == mask).mean()
    q = crf.crf_probs(image, probs)
    assert q.shape == probs.shape
    np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-4)
    assert (q.argmax(0) == mask).mean() > before + 0.05


def test_seed_crf_keeps_voc_labels_of_the_image_classes() -> None:
    pytest.importorskip("pydensecrf.densecrf")
    rng = np.random.default_rng(2)
    image, mask = _scene(rng)
    cam = np.where(mask == 1, 0.55, 0.0) + rng.uniform(0, 0.7, mask.shape)  # noisy seed of class key 6
    out = crf.seed_crf_labels(image, cam[None], np.array([6]), threshold=0.5)
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 7}
    seed = np.where(cam > 0.5, 7, 0)
    gt = mask * 7
    assert (out == gt).mean() > (seed == gt).mean()
    assert (out == gt).mean() > 0.97
    empty = crf.seed_crf_labels(image, np.zeros((0, 48, 48)), np.array([], dtype=np.int64), threshold=0.5)
    assert not empty.any()


def test_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    with pytest.raises(ConfigError, match=r"woodseg\[crf\]"):
        crf.crf_labels(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.int64), n_labels=2)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="HxWx3"):
        crf.crf_labels(np.zeros((4, 5, 3), np.uint8), np.zeros((4, 4), np.int64), n_labels=2)
