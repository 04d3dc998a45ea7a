import numpy as np
import pytest

from woodseg.refine.ir_labels import IR_THRESHOLDS, IrThresholds, combine_confident, ir_labels


def _rings(size: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concentric squares: inner (seed 0.6), ring (seed 0.2), outside (seed 0.02); image colours follow."""
    region = np.zeros((size, size), dtype=np.int64)
    region[6:34, 6:34] = 1
    region[13:27, 13:27] = 2
    cam = np.choose(region, [0.02, 0.2, 0.6])
    image = np.stack([np.choose(region, c) for c in ([20, 120, 230], [20, 200, 40], [200, 60, 20])], -1)
    return image.astype(np.uint8), cam, region


@pytest.mark.parametrize("name", ["irn", "wood", "advcam"])
def test_255_exactly_between_the_thresholds_without_crf(name: str) -> None:
    rng = np.random.default_rng(0)
    cam = rng.uniform(0, 1, (2, 30, 30))
    keys = np.array([3, 11])
    th = IR_THRESHOLDS[name]
    out = ir_labels(None, cam, keys, th, crf=False)
    m = cam.max(0)
    cls = keys[cam.argmax(0)] + 1
    np.testing.assert_array_equal(out == 255, (m > th.bg) & (m <= th.fg))
    np.testing.assert_array_equal(out == 0, m <= th.bg)
    np.testing.assert_array_equal(out[m > th.fg], cls[m > th.fg])


def test_named_settings() -> None:
    assert IR_THRESHOLDS["irn"] == IrThresholds(0.30, 0.05)
    assert IR_THRESHOLDS["wood"] == IrThresholds(0.30, 0.15)
    with pytest.raises(ValueError, match="bg <= fg"):
        IrThresholds(fg=0.1, bg=0.2)


def test_with_crf_the_uncertain_ring_is_ignored_and_moves_with_the_thresholds() -> None:
    pytest.importorskip("pydensecrf.densecrf")
    image, cam, region = _rings()
    keys = np.array([4])
    out = ir_labels(image, cam[None], keys, IR_THRESHOLDS["irn"])  # ring 0.2 lies between 0.05 and 0.30
    np.testing.assert_array_equal(out, np.choose(region, [0, 255, 5]))
    out = ir_labels(image, cam[None], keys, IrThresholds(fg=0.30, bg=0.25))  # ring below bg: background
    np.testing.assert_array_equal(out, np.choose(region, [0, 0, 5]))


def test_foreground_wins_over_the_background_map() -> None:
    fg = np.array([[0, 5, 0]])
    bg = np.array([[0, 0, 5]])
    np.testing.assert_array_equal(combine_confident(fg, bg), [[0, 5, 255]])
