"""IRN image primitives against reference-spec 2.1: sizes, PIL bicubic, normalisation, random crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from woodseg.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    denormalize,
    hwc_to_tensor,
    normalize,
    random_crop,
    random_resize_long,
    rescale,
    resize_long,
    scaled_size,
    train_transform,
)


def _rand_img(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---- sizes and resizing ---------------------------------------------------------------------------------


def test_scaled_size_rounds_half_to_even():
    assert scaled_size(5, 7, 0.5) == (2, 4)  # 2.5 -> 2, 3.5 -> 4
    assert scaled_size(3, 9, 0.5) == (2, 4)  # 1.5 -> 2, 4.5 -> 4
    assert scaled_size(11, 13, 0.5) == (6, 6)  # 5.5 -> 6, 6.5 -> 6
    assert scaled_size(10, 20, 1.5) == (15, 30)
    assert scaled_size(7, 7, 0.3) == (2, 2)  # 2.1 -> 2
    assert scaled_size(1, 3, 0.1) == (1, 1)  # never 0


def test_rescale_matches_pil_bicubic_exactly():
    img = _rand_img(37, 53)
    for scale in (0.5, 0.7, 1.5, 2.0):
        th, tw = scaled_size(37, 53, scale)
        expected = np.asarray(Image.fromarray(img).resize((tw, th), resample=Image.BICUBIC))
        out = rescale(img, scale)
        assert out.shape == (th, tw, 3)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, expected)


def test_rescale_downscale_antialiases_like_pil():
    # a 1-pixel checkerboard shrunk by 4: PIL's bicubic averages to grey; point sampling would not
    board = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)
    img = np.repeat(board[..., None], 3, axis=2)
    out = rescale(img, 0.25)
    assert out.shape == (16, 16, 3)
    assert np.abs(out.astype(int) - 128).max() < 10


def test_rescale_half_even_sizes():
    assert rescale(_rand_img(5, 7), 0.5).shape == (2, 4, 3)


def test_rescale_labels_nearest():
    lab = np.random.default_rng(1).integers(0, 21, (9, 13), dtype=np.uint8)
    lab[0, 0] = 255
    out = rescale(lab, 1.7, order=0)
    th, tw = scaled_size(9, 13, 1.7)
    expected = np.asarray(Image.fromarray(lab).resize((tw, th), resample=Image.NEAREST))
    np.testing.assert_array_equal(out, expected)
    assert set(np.unique(out)) <= set(np.unique(lab))  # no interpolated label values


def test_rescale_identity():
    img = _rand_img(4, 6)
    np.testing.assert_array_equal(rescale(img, 1.0), img)


def test_resize_long_side():
    img = _rand_img(30, 20)  # portrait: H is the long side
    assert resize_long(img, 60).shape == (60, 40, 3)
    img = _rand_img(20, 30)  # landscape
    assert resize_long(img, 15).shape == (10, 15, 3)
    img = _rand_img(20, 20)
    assert resize_long(img, 10).shape == (10, 10, 3)


def test_random_resize_long_range_is_inclusive():
    img = _rand_img(10, 20)
    longs = {random_resize_long(img, 4, 6, np.random.default_rng(s)).shape[1] for s in range(60)}
    assert longs == {4, 5, 6}


# ---- normalisation --------------------------------------------------------------------------------------


def test_normalize_formula():
    img = np.array([[[0, 128, 255], [124, 116, 104]]], np.uint8)
    out = normalize(img)
    assert out.dtype == np.float32
    expected = (img.astype(np.float64) / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert np.abs(out[0, 1]).max() < 0.02  # the ImageNet mean colour maps to ~0 (the crop pad value)


def test_normalize_denormalize_round_trip():
    img = _rand_img(17, 23, seed=3)
    back = denormalize(normalize(img))
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, img)
    np.testing.assert_array_equal(IMAGENET_MEAN, np.float32([0.485, 0.456, 0.406]))
    np.testing.assert_array_equal(IMAGENET_STD, np.float32([0.229, 0.224, 0.225]))


def test_denormalize_clips():
    x = np.full((1, 1, 3), 100.0, np.float32)
    assert (denormalize(x) == 255).all()
    assert (denormalize(-x) == 0).all()


# ---- random crop ----------------------------------------------------------------------------------------


def _coords(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy * 1000 + xx + 1).astype(np.int64)  # +1 so that 0 means padding


def _placement(box: np.ndarray) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(container top-left, source top-left, copied extent) read back from a crop of _coords."""
    ys, xs = np.nonzero(box)
    ct, cl = int(ys.min()), int(xs.min())
    v = int(box[ct, cl]) - 1
    return (ct, cl), (v // 1000, v % 1000), (int(ys.max()) - ct + 1, int(xs.max()) - cl + 1)


def _check_window(box: np.ndarray, src: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    (ct, cl), (st, sl), (eh, ew) = _placement(box)
    expected = np.zeros_like(box)
    expected[ct:ct + eh, cl:cl + ew] = src[st:st + eh, sl:sl + ew]
    np.testing.assert_array_equal(box, expected)  # a contiguous window, everything else the pad value
    return (ct, cl), (st, sl)


def test_random_crop_larger_image_offsets_in_bounds_and_cover_range():
    src = _coords(12, 9)
    seen = set()
    for s in range(120):
        (box,) = random_crop([src], 5, [0], np.random.default_rng(s))
        assert box.shape == (5, 5)
        (ct, cl), (st, sl) = _check_window(box, src)
        assert (ct, cl) == (0, 0)
        assert 0 <= st <= 12 - 5 and 0 <= sl <= 9 - 5
        assert (box > 0).all()  # no padding when the image covers the crop
        seen.add((st, sl))
    assert {t for t, _ in seen} == set(range(8)) and {left for _, left in seen} == set(range(5))


def test_random_crop_smaller_image_is_placed_inside_container():
    src = _coords(3, 4)
    seen = set()
    for s in range(120):
        (box,) = random_crop([src], 6, [0], np.random.default_rng(s))
        assert box.shape == (6, 6)
        (ct, cl), (st, sl) = _check_window(box, src)
        assert (st, sl) == (0, 0)
        assert 0 <= ct <= 6 - 3 and 0 <= cl <= 6 - 4
        assert (box > 0).sum() == 12  # the whole image is inside
        seen.add((ct, cl))
    assert {t for t, _ in seen} == set(range(4)) and {left for _, left in seen} == set(range(3))


def test_random_crop_mixed_sides():
    src = _coords(10, 3)  # taller than the crop, narrower than it
    for s in range(40):
        (box,) = random_crop([src], 5, [0], np.random.default_rng(s))
        (ct, cl), (st, sl) = _check_window(box, src)
        assert ct == 0 and sl == 0
        assert 0 <= st <= 5 and 0 <= cl <= 2
        assert (box > 0).sum() == 5 * 3


def test_random_crop_exact_size_is_identity():
    src = _coords(5, 5)
    (box,) = random_crop([src], 5, [0], np.random.default_rng(0))
    np.testing.assert_array_equal(box, src)


def test_random_crop_same_offsets_for_every_array_and_own_pad():
    h, w = 7, 11
    coords = _coords(h, w)
    img = np.stack([coords, -coords, coords * 2], axis=2).astype(np.float32)
    lab = (coords % 200).astype(np.uint8)
    for s in range(30):
        a, b, c = random_crop([coords, img, lab], 9, [0, -7.5, 255], np.random.default_rng(s))
        assert a.shape == (9, 9) and b.shape == (9, 9, 3) and c.shape == (9, 9)
        assert b.dtype == np.float32 and c.dtype == np.uint8
        inside = a > 0
        np.testing.assert_array_equal(b[..., 0][inside], a[inside].astype(np.float32))
        np.testing.assert_array_equal(b[..., 1][inside], -a[inside].astype(np.float32))
        np.testing.assert_array_equal(c[inside], (a[inside] % 200).astype(np.uint8))
        assert (b[~inside] == -7.5).all()  # container filled with each array's pad value
        assert (c[~inside] == 255).all()
        assert (~inside).any()  # W < 9 and H < 9: always some padding


def test_random_crop_is_reproducible_for_a_seed():
    src = _coords(20, 20)
    a = random_crop([src], 8, [0], np.random.default_rng(5))[0]
    b = random_crop([src], 8, [0], np.random.default_rng(5))[0]
    np.testing.assert_array_equal(a, b)


# ---- the whole train transform --------------------------------------------------------------------------


def test_train_transform_deterministic_for_a_seed():
    img = _rand_img(30, 45, seed=7)
    a = train_transform(img, (20, 40), 32, np.random.default_rng(11))
    b = train_transform(img, (20, 40), 32, np.random.default_rng(11))
    assert isinstance(a, torch.Tensor)
    assert a.shape == (3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b)
    others = [train_transform(img, (20, 40), 32, np.random.default_rng(s)) for s in range(12, 18)]
    assert any(not torch.equal(a, o) for o in others)


def test_train_transform_pads_with_zero_and_keeps_pixels_normalised():
    img = np.full((10, 20, 3), 255, np.uint8)
    out = train_transform(img, (16, 16), 24, np.random.default_rng(0)).numpy()
    # long side 16 -> 8x16 image inside a 24x24 container of zeros
    white = ((1.0 - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)
    is_white = np.isclose(out, white[:, None, None], atol=1e-4).all(0)
    is_pad = (out == 0).all(0)
    assert is_white.sum() == 8 * 16
    assert (is_white | is_pad).all()


def test_hwc_to_tensor():
    x = np.arange(24, dtype=np.float32).reshape(2, 4, 3)[:, ::-1]
    t = hwc_to_tensor(x)
    assert t.shape == (3, 2, 4)
    assert torch.equal(t, torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))))


@pytest.mark.parametrize("h,w", [(1, 1), (2, 3)])
def test_tiny_images_survive_rescale(h, w):
    assert rescale(_rand_img(h, w), 0.25).shape[:2] == (1, 1)
