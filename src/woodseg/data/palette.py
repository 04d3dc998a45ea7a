"""The Pascal VOC colour map and palette PNG writing."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from woodseg.errors import DataError
from woodseg.fsutil import atomic_save


def voc_palette(n: int = 256) -> np.ndarray:
    """The VOC bit-interleaving colour map as an (n, 3) uint8 array; entry 255 is (224, 224, 192)."""
    return _voc_palette(n).copy()


@lru_cache(maxsize=4)
def _voc_palette(n: int) -> np.ndarray:
    pal = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def colours_to_indices(rgb: np.ndarray, palette: np.ndarray | None, path: str | Path) -> np.ndarray:
    """Map an RGB mask back to indices through a palette; unknown colours are an error naming the file."""
    pal = voc_palette() if palette is None else palette
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    pal_codes = (pal[:, 0].astype(np.int64) << 16) | (pal[:, 1].astype(np.int64) << 8) | pal[:, 2]
    lookup = {int(code): idx for idx, code in reversed(list(enumerate(pal_codes)))}
    out = np.empty(codes.shape, dtype=np.uint8)
    for code in np.unique(codes):
        if int(code) not in lookup:
            colour = (int(code >> 16) & 255, int(code >> 8) & 255, int(code) & 255)
            raise DataError(f"RGB mask holds colour {colour} that is not in the palette", path=path,
                            fix="save masks as palette PNGs holding class indices")
        out[codes == code] = lookup[int(code)]
    return out


def save_palette_png(path: str | Path, labels: np.ndarray) -> None:
    """Write a class-index map as a palette PNG (values are indices; colours for viewing only)."""
    im = Image.fromarray(labels.astype(np.uint8), mode="P")
    im.putpalette(voc_palette().reshape(-1).tolist())
    atomic_save(path, lambda buf: im.save(buf, format="PNG"))
