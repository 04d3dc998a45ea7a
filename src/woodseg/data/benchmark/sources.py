"""The real photographs and textures the benchmark is painted from: all shipped offline.

scikit-image ships 512x512 greyscale ``grass``, ``gravel`` and ``brick`` textures and a handful of colour
photos; scikit-learn ships ``china.jpg`` and ``flower.jpg``. Nothing here downloads. Each source is loaded
once per process, its longer side reduced to at most 512 px (bicubic) and kept as a PIL image (for fast
crop-resizes) and as float32 in [0, 1] (for perspective look-ups).

Which source serves what:

* ``grass``  -> meadow ground, foliage leaves;  ``gravel`` -> rail ballast, runway asphalt, bark, wood;
  ``brick`` -> brick walls (neutral scenes) and one of the object fills.
* ``PHOTOS`` -> neutral photo scenes (none shows any of the six classes) and object fills.
* ``horse`` (a boolean silhouette, True = background) -> the horse class's body shape.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image

MAX_SIDE = 512

TEXTURES: tuple[str, ...] = ("grass", "gravel", "brick")

PHOTOS: tuple[str, ...] = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
    "colorwheel", "logo", "camera", "coins", "moon", "china", "flower",
)  # fmt: skip
"""Colour (or greyscale, shown as grey) photographs for neutral scenes and object fills."""

FILL_SOURCES: tuple[str, ...] = PHOTOS + ("brick",)
"""Object fills: photos and brick, never the context textures (a grass-filled horse on grass vanishes)."""


def _load_raw(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    arr = getattr(skimage.data, name)()
    if arr.dtype == bool:
        return (arr * 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 4:  # logo: composite over white
        rgb = arr[..., :3].astype(np.float32)
        a = arr[..., 3:4].astype(np.float32) / 255.0
        arr = (rgb * a + 255.0 * (1 - a)).round().astype(np.uint8)
    return arr


@cache
def source_image(name: str) -> Image.Image:
    """The source as a PIL image (mode ``L`` or ``RGB``), longer side <= 512."""
    arr = _load_raw(name)
    im = Image.fromarray(arr)
    if im.mode not in ("L", "RGB"):
        im = im.convert("RGB")
    w, h = im.size
    if max(w, h) > MAX_SIDE:
        s = MAX_SIDE / max(w, h)
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BICUBIC)
    return im


@cache
def source_array(name: str) -> np.ndarray:
    """The source as float32 in [0, 1]: (H, W) for greyscale, (H, W, 3) for colour. Read-only."""
    arr = np.asarray(source_image(name), dtype=np.float32) / 255.0
    arr.setflags(write=False)
    return arr


@cache
def horse_silhouette() -> np.ndarray:
    """skimage's horse as float32 alpha (1 = horse), cropped to its bounding box; faces right."""
    import skimage.data

    mask = ~skimage.data.horse()
    ys, xs = np.nonzero(mask)
    crop = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32)
    crop.setflags(write=False)
    return crop
