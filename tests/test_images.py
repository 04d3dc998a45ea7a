"""Image and mask reading: every PIL mode becomes RGB uint8; bad files raise ImageError naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from woodseg.data.images import image_size, load_image, load_mask
from woodseg.data.palette import colours_to_indices, save_palette_png, voc_palette
from woodseg.errors import DataError, ImageError

# reference-spec 1.1: the VOC palette, labels 0..20 and 255
VOC_COLOURS = {
    0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128), 5: (128, 0, 128),
    6: (0, 128, 128), 7: (128, 128, 128), 8: (64, 0, 0), 9: (192, 0, 0), 10: (64, 128, 0), 11: (192, 128, 0),
    12: (64, 0, 128), 13: (192, 0, 128), 14: (64, 128, 128), 15: (192, 128, 128), 16: (0, 64, 0),
    17: (128, 64, 0), 18: (0, 192, 0), 19: (128, 192, 0), 20: (0, 64, 128), 255: (224, 224, 192),
}


def _check_rgb(arr: np.ndarray, h: int, w: int) -> None:
    assert isinstance(arr, np.ndarray)
    assert arr.dtype == np.uint8
    assert arr.shape == (h, w, 3)


def _quadrants(h: int, w: int) -> np.ndarray:
    """An image with four flat, very different quadrant colours (survives JPEG)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (255, 0, 0)
    img[: h // 2, w // 2:] = (0, 255, 0)
    img[h // 2:, : w // 2] = (0, 0, 255)
    img[h // 2:, w // 2:] = (255, 255, 255)
    return img


# ---- load_image: modes --------------------------------------------------------------------------------


def test_rgb_png_exact(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (7, 11, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    _check_rgb(out, 7, 11)
    np.testing.assert_array_equal(out, img)


def test_greyscale_L(tmp_path):
    grey = np.arange(6 * 9, dtype=np.uint8).reshape(6, 9) * 4
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    _check_rgb(out, 6, 9)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_16bit_greyscale(tmp_path):
    arr = np.zeros((4, 5), np.uint16)
    arr[0, 0] = 1000
    arr[1, 1] = 500
    arr[2, 2] = 40000
    Image.fromarray(arr).save(tmp_path / "d.png")
    with Image.open(tmp_path / "d.png") as im:
        assert im.mode.startswith("I")  # really a 16-bit file
    out = load_image(tmp_path / "d.png")
    _check_rgb(out, 4, 5)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    # scaled into 0..255, order kept (a plain uint8 cast would wrap 40000 and 1000)
    assert out[2, 2, 0] == 255
    assert out[3, 3, 0] == 0
    assert out[2, 2, 0] > out[0, 0, 0] > out[1, 1, 0] > 0


def test_cmyk_jpeg(tmp_path):
    im = Image.new("CMYK", (16, 12), (0, 255, 255, 0))  # pure red in CMYK
    im.save(tmp_path / "c.jpg", quality=95)
    with Image.open(tmp_path / "c.jpg") as check:
        assert check.mode == "CMYK"
    out = load_image(tmp_path / "c.jpg")
    _check_rgb(out, 12, 16)
    mean = out.reshape(-1, 3).mean(0)
    assert mean[0] > 230 and mean[1] < 25 and mean[2] < 25


def test_rgba_png_composited_over_black(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[0, :, 3] = 255  # opaque row
    rgba[1, 0, 3] = 0  # fully transparent
    rgba[1, 1, 3] = 128  # half
    rgba[1, 2, 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "t.png")
    out = load_image(tmp_path / "t.png")
    _check_rgb(out, 2, 3)
    np.testing.assert_array_equal(out[0], [[200, 100, 50]] * 3)
    np.testing.assert_array_equal(out[1, 0], [0, 0, 0])
    np.testing.assert_allclose(out[1, 1].astype(float), [100, 50, 25], atol=1.5)
    np.testing.assert_array_equal(out[1, 2], [200, 100, 50])


def test_la_png_composited_over_black(tmp_path):
    la = Image.new("LA", (2, 1))
    la.putpixel((0, 0), (180, 255))
    la.putpixel((1, 0), (180, 0))
    la.save(tmp_path / "la.png")
    out = load_image(tmp_path / "la.png")
    np.testing.assert_array_equal(out[0], [[180, 180, 180], [0, 0, 0]])


def test_palette_png_with_transparency(tmp_path):
    idx = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (253 * 3))
    im.save(tmp_path / "p.png", transparency=0)
    with Image.open(tmp_path / "p.png") as check:
        assert check.mode == "P" and "transparency" in check.info
    out = load_image(tmp_path / "p.png")
    _check_rgb(out, 2, 3)
    expected = np.array([[[0, 0, 0], [0, 255, 0], [0, 0, 255]], [[0, 0, 255], [0, 255, 0], [0, 0, 0]]], np.uint8)
    np.testing.assert_array_equal(out, expected)  # index 0 is transparent -> black, not red


def test_palette_png_without_transparency(tmp_path):
    idx = np.array([[0, 1]], np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([255, 0, 0, 0, 255, 0] + [0] * (254 * 3))
    im.save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_image(tmp_path / "p.png"), [[[255, 0, 0], [0, 255, 0]]])


def _exif_jpeg(path, img: np.ndarray, orientation: int) -> None:
    im = Image.fromarray(img)
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(path, quality=95, exif=exif.tobytes())


def test_exif_orientation_6_rotates_clockwise(tmp_path):
    stored = _quadrants(32, 64)  # H=32, W=64 as stored
    _exif_jpeg(tmp_path / "r.jpg", stored, 6)
    with Image.open(tmp_path / "r.jpg") as check:
        assert check.getexif().get(0x0112) == 6 and check.size == (64, 32)
    out = load_image(tmp_path / "r.jpg")
    _check_rgb(out, 64, 32)  # width and height swapped
    expected = np.rot90(stored, k=-1)  # orientation 6: display = stored rotated 90 degrees clockwise
    err = np.abs(out.astype(int) - expected.astype(int)).mean()
    wrong = np.abs(out.astype(int) - np.rot90(stored, k=1).astype(int)).mean()
    assert err < 8, err
    assert wrong > 60  # the other direction is far off, so the check above means something
    # the stored top-left (red) quadrant is shown top-right after a clockwise turn
    assert tuple(out[8, 24]) == pytest.approx((255, 0, 0), abs=20)
    assert image_size(tmp_path / "r.jpg") == out.shape[:2] == (64, 32)


@pytest.mark.parametrize("orientation,turn", [(1, None), (3, 2), (8, 1)])
def test_other_exif_orientations(tmp_path, orientation, turn):
    stored = _quadrants(16, 24)
    _exif_jpeg(tmp_path / "o.jpg", stored, orientation)
    out = load_image(tmp_path / "o.jpg")
    expected = stored if turn is None else np.rot90(stored, k=turn)
    assert out.shape == expected.shape
    assert np.abs(out.astype(int) - expected.astype(int)).mean() < 8
    assert image_size(tmp_path / "o.jpg") == out.shape[:2]


def test_image_size_without_exif(tmp_path):
    Image.new("RGB", (13, 7)).save(tmp_path / "s.png")
    assert image_size(tmp_path / "s.png") == (7, 13)


# ---- load_image: bad files ----------------------------------------------------------------------------


def _assert_image_error(path) -> ImageError:
    with pytest.raises(ImageError) as exc:
        load_image(path)
    msg = str(exc.value)
    assert str(path) in msg
    assert "fix:" in msg
    return exc.value


def test_missing_file(tmp_path):
    err = _assert_image_error(tmp_path / "nope.jpg")
    assert "does not exist" in str(err)
    assert isinstance(err, DataError)  # ImageError is a DataError: stages catch both alike


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    assert "empty" in str(_assert_image_error(p))


def test_text_file_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not an image\n")
    _assert_image_error(p)


def test_truncated_jpeg(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    full = tmp_path / "full.jpg"
    Image.fromarray(img).save(full, quality=90)
    data = full.read_bytes()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 2])
    _assert_image_error(p)


def test_image_size_errors_name_the_file(tmp_path):
    with pytest.raises(ImageError) as exc:
        image_size(tmp_path / "gone.png")
    assert "gone.png" in str(exc.value)
    p = tmp_path / "t.png"
    p.write_text("text")
    with pytest.raises(ImageError) as exc:
        image_size(p)
    assert str(p) in str(exc.value)


# ---- masks and palette ---------------------------------------------------------------------------------


def test_voc_palette_matches_reference():
    pal = voc_palette()
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    for label, colour in VOC_COLOURS.items():
        assert tuple(int(v) for v in pal[label]) == colour, label
    assert len({tuple(c) for c in pal.tolist()}) == 256  # an injective colour map


def test_load_mask_palette_png_keeps_indices_not_luminance(tmp_path):
    idx = np.array([[0, 1, 2], [3, 255, 1]], np.uint8)
    im = Image.fromarray(idx, mode="P")
    pal = [0] * 768
    pal[3:6] = (255, 255, 255)  # index 1 is white: luminance 255
    pal[6:9] = (0, 0, 0)  # index 2 is black: luminance 0
    pal[9:12] = (0, 255, 0)  # index 3: luminance ~150
    pal[765:768] = (224, 224, 192)
    im.putpalette(pal)
    im.save(tmp_path / "m.png")
    with Image.open(tmp_path / "m.png") as check:
        luminance = np.asarray(check.convert("L"))
    assert not np.array_equal(luminance, idx)  # an 'L' conversion would corrupt these labels
    out = load_mask(tmp_path / "m.png")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, idx)


def test_save_palette_png_round_trip(tmp_path):
    lab = np.array([[0, 1, 20], [255, 7, 0]], np.uint8)
    save_palette_png(tmp_path / "s.png", lab)
    with Image.open(tmp_path / "s.png") as im:
        assert im.mode == "P"
        assert tuple(np.asarray(im.convert("RGB"))[0, 1]) == VOC_COLOURS[1]
    np.testing.assert_array_equal(load_mask(tmp_path / "s.png"), lab)


def test_load_mask_greyscale_png(tmp_path):
    lab = np.array([[0, 3], [255, 1]], np.uint8)
    Image.fromarray(lab, mode="L").save(tmp_path / "g.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "g.png"), lab)


def test_load_mask_rgb_colour_mask_maps_through_voc_palette(tmp_path):
    lab = np.array([[0, 1, 15], [20, 255, 7]], np.uint8)
    rgb = np.array([[VOC_COLOURS[int(v)] for v in row] for row in lab], np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    out = load_mask(tmp_path / "c.png")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, lab)


def test_load_mask_rgb_with_custom_palette(tmp_path):
    pal = np.zeros((256, 3), np.uint8)
    pal[1] = (10, 20, 30)
    pal[2] = (128, 0, 0)  # VOC's class 1 colour means class 2 here
    rgb = np.array([[[0, 0, 0], [10, 20, 30], [128, 0, 0]]], np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "c.png", pal), [[0, 1, 2]])


def test_load_mask_unknown_colour_errors(tmp_path):
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[1, 1] = (1, 2, 3)
    p = tmp_path / "bad.png"
    Image.fromarray(rgb).save(p)
    with pytest.raises(DataError) as exc:
        load_mask(p)
    assert str(p) in str(exc.value)
    assert "(1, 2, 3)" in str(exc.value)
    assert "fix:" in str(exc.value)


def test_colours_to_indices_direct():
    rgb = np.array([[[128, 0, 0], [224, 224, 192]]], np.uint8)
    np.testing.assert_array_equal(colours_to_indices(rgb, None, "x.png"), [[1, 255]])


def test_load_mask_missing_and_16bit_out_of_range(tmp_path):
    with pytest.raises(DataError) as exc:
        load_mask(tmp_path / "none.png")
    assert "none.png" in str(exc.value)
    big = np.array([[0, 300]], np.uint16)
    Image.fromarray(big).save(tmp_path / "big.png")
    with pytest.raises(DataError) as exc:
        load_mask(tmp_path / "big.png")
    assert "big.png" in str(exc.value)
    ok = np.array([[0, 2, 255]], np.uint16)
    Image.fromarray(ok).save(tmp_path / "ok16.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "ok16.png"), [[0, 2, 255]])
