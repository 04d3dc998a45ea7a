"""deeplab-pytorch's input pipeline (``libs/datasets/voc.py``, ``base.py``): BGR minus the Caffe mean, no std.

Training: a random scale from {0.5, 0.75, 1.0, 1.25, 1.5} (sizes truncated with int(); image bilinear,
label nearest), pad to the crop size (image 0 after mean subtraction, label 255), random crop, flip.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from woodseg.data.transforms import random_crop, resize_to

MEAN_BGR = np.array([104.008, 116.669, 122.675], dtype=np.float32)
TRAIN_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5)


def to_input(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 HxWx3 -> float [3, H, W]: BGR order minus the Caffe mean (deeplab-pytorch's normalisation)."""
    bgr = image[..., ::-1].astype(np.float32) - MEAN_BGR
    return torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))


def _resize_bilinear(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False)[0]


def train_sample(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, crop: int = 321,
                 scales: Sequence[float] = TRAIN_SCALES) -> dict[str, torch.Tensor]:
    """One augmented pair: ``{"img": [3, crop, crop] float, "label": [crop, crop] int64}``."""
    if image.shape[:2] != label.shape:
        raise ValueError(f"image {image.shape[:2]} and label {label.shape} differ in size")
    scale = float(scales[int(rng.integers(len(scales)))])
    h, w = int(label.shape[0] * scale), int(label.shape[1] * scale)
    x = _resize_bilinear(to_input(image), h, w).numpy().transpose(1, 2, 0)
    lab = resize_to(label.astype(np.uint8), h, w, order=0)
    # pad bottom/right to the crop size, then one random crop (random_crop pads at a random offset instead,
    # so pad first to keep deeplab-pytorch's top-left placement)
    ph, pw = max(crop - h, 0), max(crop - w, 0)
    x = np.pad(x, ((0, ph), (0, pw), (0, 0)))
    lab = np.pad(lab, ((0, ph), (0, pw)), constant_values=255)
    x, lab = random_crop([x, lab], crop, [0.0, 255], rng)
    if rng.random() < 0.5:
        x, lab = x[:, ::-1], lab[:, ::-1]
    return {"img": torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))),
            "label": torch.from_numpy(lab.astype(np.int64))}
