"""IRN's image primitives, with its exact resize semantics (IRN ``misc/imutils.py``, ``voc12/dataloader.py``).

Images are rescaled with PIL bicubic (which antialiases when shrinking) to sizes rounded half-to-even,
normalised with ImageNet statistics *before* flip and crop, and padded with 0 in normalised space (the
ImageNet-mean colour). Randomness comes from an explicit ``numpy.random.Generator`` so that a resumed
or sharded run draws the same augmentations.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def scaled_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """Target (h, w) for a rescale by ``scale``: NumPy's round-half-to-even, at least 1 pixel."""
    return max(1, int(np.round(h * scale))), max(1, int(np.round(w * scale)))


def rescale(img: np.ndarray, scale: float, order: int = 3) -> np.ndarray:
    """Rescale an HxW(xC) uint8 array: bicubic (order 3) for images, nearest (order 0) for labels."""
    if scale == 1.0:
        return img
    h, w = img.shape[:2]
    th, tw = scaled_size(h, w, scale)
    return resize_to(img, th, tw, order)


def resize_to(img: np.ndarray, th: int, tw: int, order: int = 3) -> np.ndarray:
    resample = Image.BICUBIC if order == 3 else Image.NEAREST
    return np.asarray(Image.fromarray(img).resize((tw, th), resample=resample))


def resize_long(img: np.ndarray, long_side: int) -> np.ndarray:
    """Rescale so the longer side equals ``long_side`` (deterministic form of random_resize_long)."""
    h, w = img.shape[:2]
    scale = long_side / h if w < h else long_side / w
    return rescale(img, scale)


def random_resize_long(img: np.ndarray, lo: int, hi: int, rng: np.random.Generator) -> np.ndarray:
    """Pick L uniformly in [lo, hi] (inclusive) and rescale the long side to L, bicubic."""
    return resize_long(img, int(rng.integers(lo, hi + 1)))


def normalize(img: np.ndarray) -> np.ndarray:
    """uint8 RGB HxWx3 -> float32, (x/255 - mean) / std per channel."""
    return (img.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD


def denormalize(img: np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalize`, back to uint8 (for figures)."""
    return np.clip((img * IMAGENET_STD + IMAGENET_MEAN) * 255.0, 0, 255).round().astype(np.uint8)


def random_crop(arrays: list[np.ndarray], size: int, pads: list[float], rng: np.random.Generator) -> list[np.ndarray]:
    """IRN's random crop: an SxS container filled with the pad value; one offset pair shared by all arrays.

    A side longer than S is cropped at a random source offset; a shorter one is placed at a random
    container offset.
    """
    h, w = arrays[0].shape[:2]
    ch, cw = min(size, h), min(size, w)
    w_space, h_space = w - size, h - size
    if w_space > 0:
        cont_left, img_left = 0, int(rng.integers(0, w_space + 1))
    else:
        cont_left, img_left = int(rng.integers(0, -w_space + 1)), 0
    if h_space > 0:
        cont_top, img_top = 0, int(rng.integers(0, h_space + 1))
    else:
        cont_top, img_top = int(rng.integers(0, -h_space + 1)), 0
    out = []
    for arr, pad in zip(arrays, pads, strict=True):
        box = np.full((size, size) + arr.shape[2:], pad, dtype=arr.dtype)
        box[cont_top:cont_top + ch, cont_left:cont_left + cw] = arr[img_top:img_top + ch, img_left:img_left + cw]
        out.append(box)
    return out


def hwc_to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def train_transform(img: np.ndarray, resize_long_range: tuple[int, int], crop: int,
                    rng: np.random.Generator) -> torch.Tensor:
    """IRN's classifier augmentation: random_resize_long -> normalize -> hflip 1/2 -> random crop (pad 0)."""
    img = random_resize_long(img, resize_long_range[0], resize_long_range[1], rng)
    x = normalize(img)
    if rng.random() < 0.5:
        x = x[:, ::-1]
    (x,) = random_crop([x], crop, [0.0], rng)
    return hwc_to_tensor(x)
