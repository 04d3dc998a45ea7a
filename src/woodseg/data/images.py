"""Robust image and mask reading.

Real collections (OpenImages above all) hold greyscale, CMYK, RGBA, 16-bit and EXIF-rotated files; the
official code breaks on some of them deep inside a worker. Here every image becomes RGB uint8 HxWx3 in
its displayed orientation, and a file that cannot be read raises :class:`ImageError` naming it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from woodseg.errors import DataError, ImageError, check_file

log = logging.getLogger(__name__)

# Truncated JPEGs must fail loudly rather than decode as grey: keep PIL's default (LOAD_TRUNCATED_IMAGES False).
Image.MAX_IMAGE_PIXELS = 200_000_000


def load_image(path: str | Path) -> np.ndarray:
    """Read any image PIL understands as RGB uint8 (H, W, 3), applying its EXIF orientation."""
    path = Path(path)
    check_file(path, "image file", "check the image root and the id/list entry", ImageError)
    if path.stat().st_size == 0:
        raise ImageError("image file is empty (0 bytes)", path=path, fix="re-download or remove it from the list")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im)
                rgb = _to_rgb(im)
    except UnidentifiedImageError as exc:
        raise ImageError("not a readable image", path=path, fix="re-download it or remove it from the list") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"corrupt or truncated image ({exc})", path=path,
                         fix="re-download it or remove it from the list; or set data.on_bad_image=skip") from exc
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"decoded to an unexpected shape {arr.shape}", path=path, fix="remove it from the list")
    return arr


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert every PIL mode to RGB. Alpha is composited over black (the zero of most pipelines' padding)."""
    if im.mode == "RGB":
        im.load()
        return im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (0, 0, 0))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        hi = arr.max() if arr.size and arr.max() > 0 else 1.0
        return Image.fromarray((arr / hi * 255.0).round().astype(np.uint8)).convert("RGB")
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = (arr - lo) / (hi - lo if hi > lo else 1.0) * 255.0
        return Image.fromarray(np.nan_to_num(scaled).round().astype(np.uint8)).convert("RGB")
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) after EXIF orientation, reading only the header."""
    path = check_file(path, "image file", "check the image root", ImageError)
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except FileNotFoundError as exc:
        raise ImageError("image file does not exist", path=path, fix="check the image root") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"not a readable image ({exc})", path=path, fix="remove it from the list") from exc
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def exif_orientation(path: str | Path) -> int:
    """The EXIF orientation tag (1 = as stored; 5-8 swap height and width when displayed), 1 if unreadable."""
    try:
        with Image.open(path) as im:
            return int(im.getexif().get(0x0112, 1) or 1)
    except (OSError, UnidentifiedImageError, ValueError, TypeError):
        return 1


def load_mask(path: str | Path, palette: np.ndarray | None = None) -> np.ndarray:
    """Read a segmentation mask as class indices (uint8, 255 = ignore).

    Palette ("P") and greyscale PNGs keep their stored indices (never luminance-converted, as chainercv's VOC reader keeps them).
    An RGB mask is mapped back through ``palette`` (the VOC colour map by default); an unknown colour is an
    error, since guessing would silently corrupt the ground truth.
    """
    path = Path(path)
    check_file(path, "mask file", "check the mask folder or drop pixel evaluation")
    try:
        with Image.open(path) as im:
            mode = im.mode
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"mask is not a readable image ({exc})", path=path, fix="regenerate the mask") from exc
    if mode in ("P", "L"):
        return arr.astype(np.uint8)
    if mode in ("I", "I;16"):
        if arr.max() > 255:
            raise DataError("mask holds values above 255", path=path, fix="store class indices 0..C and 255 = ignore")
        return arr.astype(np.uint8)
    if mode in ("RGB", "RGBA"):
        from woodseg.data.palette import colours_to_indices

        return colours_to_indices(arr[..., :3], palette, path)
    raise DataError(f"mask has unsupported mode {mode}", path=path, fix="save masks as palette or greyscale PNGs")
