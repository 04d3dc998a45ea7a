"""Torch datasets for training: images with labels (D_in) and without (D_ood), augmented IRN-style.

A sample key is ``(index, epoch, step)`` from :class:`StepBatchSampler`; augmentation is seeded by
(seed, stream, index, epoch), so it is the same whichever worker or process loads the sample. A bad image
raises its :class:`ImageError` (naming the file), or, with ``skip_bad``, is logged and dropped from the batch.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from woodseg.config import TrainConfig
from woodseg.data.images import load_image
from woodseg.data.transforms import train_transform
from woodseg.errors import ImageError
from woodseg.train.sampler import StepBatchSampler

log = logging.getLogger(__name__)


class AugmentedImages(Dataset):
    """Images (with optional labels) under IRN's classifier augmentation."""

    def __init__(self, paths: Sequence[Path], labels: np.ndarray | None, *, resize_long: tuple[int, int],
                 crop: int, seed: int, stream: str, skip_bad: bool = False) -> None:
        self.paths, self.labels = list(paths), labels
        self.resize_long, self.crop, self.seed = resize_long, crop, seed
        self.stream = zlib.crc32(stream.encode())
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int, int]) -> dict[str, torch.Tensor] | None:
        index, epoch, _ = key
        rng = np.random.default_rng([self.seed, self.stream, index, epoch])
        try:
            img = load_image(self.paths[index])
        except ImageError as exc:
            if not self.skip_bad:
                raise
            log.warning("skipping %s", exc)
            return None
        item = {"x": train_transform(img, self.resize_long, self.crop, rng), "index": torch.tensor(index)}
        if self.labels is not None:
            item["y"] = torch.from_numpy(self.labels[index])
        return item


def collate(items: list[dict[str, torch.Tensor] | None]) -> dict[str, torch.Tensor] | None:
    """Stack samples, dropping skipped (None) ones; an all-skipped batch becomes None."""
    items = [i for i in items if i is not None]
    if not items:
        return None
    return {k: torch.stack([i[k] for i in items]) for k in items[0]}


def step_loader(paths: Sequence[Path], labels: np.ndarray | None, batch_size: int, tcfg: TrainConfig, *, stream: str,
                start: int, stop: int, drop_last: bool = True, rank: int = 0, world: int = 1,
                skip_bad: bool = False, num_workers: int = 0) -> DataLoader:
    """The loader of one stream ("in" or "ood") for steps ``start..stop-1``, augmented as ``tcfg`` says."""
    return DataLoader(
        AugmentedImages(paths, labels, resize_long=tcfg.resize_long, crop=tcfg.crop_size, seed=tcfg.seed,
                        stream=stream, skip_bad=skip_bad),
        batch_sampler=StepBatchSampler(len(paths), batch_size, seed=tcfg.seed, stream=stream, start=start,
                                       stop=stop, drop_last=drop_last, rank=rank, world=world),
        collate_fn=collate, num_workers=num_workers,
    )
