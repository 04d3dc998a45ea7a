"""deeplab-pytorch's input pipeline (``libs/datasets/voc.py``, ``base.py``): BGR minus the Caffe mean, no std.

Training: a random scale from {0.5, 0.75, 1.0, 1.25, 1.5} (sizes truncated with int(); image bilinear,
label nearest), pad to the crop size (image 0 after mean subtraction, label 255), random crop, flip.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from woodseg.data.images import load_image, load_mask
from woodseg.data.transforms import random_crop, resize_to
from woodseg.errors import DataError, ImageError
from woodseg.train.data import collate
from woodseg.train.sampler import StepBatchSampler

log = logging.getLogger(__name__)

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


class MaskedImages(Dataset):
    """Images with per-pixel labels (pseudo masks or ground truth) under :func:`train_sample`.

    A sample key is ``(index, epoch, step)`` from :class:`woodseg.train.sampler.StepBatchSampler`; the
    augmentation is seeded by (seed, index, epoch), so a resumed or multi-process run draws the same crops.
    A label value above ``num_labels - 1`` (other than 255) is an error naming the file: masks made for
    another class list must not train silently.
    """

    def __init__(self, image_paths: Sequence[Path], mask_paths: Sequence[Path], num_labels: int, *, crop: int,
                 scales: Sequence[float], seed: int, skip_bad: bool = False) -> None:
        self.image_paths, self.mask_paths = list(image_paths), list(mask_paths)
        self.num_labels, self.crop, self.scales, self.seed = num_labels, crop, tuple(scales), seed
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, key: tuple[int, int, int]) -> dict[str, torch.Tensor] | None:
        index, epoch, _ = key
        rng = np.random.default_rng([self.seed, zlib.crc32(b"segmenter"), index, epoch])
        try:
            image = load_image(self.image_paths[index])
        except ImageError as exc:
            if not self.skip_bad:
                raise
            log.warning("skipping %s", exc)
            return None
        label = load_mask(self.mask_paths[index])
        bad = np.unique(label[(label >= self.num_labels) & (label != 255)])
        if bad.size:
            raise DataError(f"mask holds labels {bad.tolist()[:5]} but the class list has only {self.num_labels - 1} "
                            "classes (+ background)", path=self.mask_paths[index],
                            fix="remake the masks for this dataset's class list (woodseg masks --restart)")
        if label.shape != image.shape[:2]:
            raise DataError(f"mask is {label.shape[1]}x{label.shape[0]}, its image {image.shape[1]}x{image.shape[0]}",
                            path=self.mask_paths[index], fix="remake the mask from this image")
        return train_sample(image, label, rng, self.crop, self.scales)


def pair_loader(ds: MaskedImages, batch_size: int, *, seed: int, start: int, stop: int, rank: int = 0,
                world: int = 1, num_workers: int = 0) -> DataLoader:
    """This rank's slice of the global batches for steps ``start..stop-1`` (drop_last epochs)."""
    return DataLoader(ds, batch_sampler=StepBatchSampler(len(ds), batch_size, seed=seed, stream="segmenter",
                                                         start=start, stop=stop, drop_last=True, rank=rank,
                                                         world=world),
                      collate_fn=collate, num_workers=num_workers)
