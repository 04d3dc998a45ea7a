"""Batched, whole-image inference over a list of files: penultimate features z and logits.

Used for the W-OoD centres (in-distribution images at native size, OoD images at a fixed long side),
for ranking OoD candidates by p(c), and for the feature t-SNE. Images of equal size are batched together,
so a dataset of one size runs at full batch speed and a mixed one stays exact (no padding).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from woodseg.data.images import load_image
from woodseg.data.transforms import normalize, resize_long
from woodseg.errors import ImageError
from woodseg.runtime.amp import amp_dtype, autocast
from woodseg.runtime.batching import is_channels_last, size_batches, to_batch

log = logging.getLogger(__name__)


@dataclass
class Predictions:
    """Per-image outputs in input order; rows of images that failed to load are NaN and listed in ``failed``."""

    features: np.ndarray  # [N, D] float32
    logits: np.ndarray  # [N, num_outputs] float32
    failed: list[int]

    @property
    def probs(self) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logits))


def predict_images(model: torch.nn.Module, paths: Sequence[Path], *, long_side: int | None = None,
                   batch_size: int = 16, device: str | torch.device = "cpu", skip_bad: bool = False,
                   progress: bool = False, desc: str = "features") -> Predictions:
    """Run ``model`` (returning ``(logits, z)``) over image files in eval mode, without gradients."""
    was_training = model.training
    model.eval()
    n = len(paths)
    feats: np.ndarray | None = None
    logits: np.ndarray | None = None
    failed: list[int] = []
    channels_last = is_channels_last(model)
    dtype = amp_dtype(device)  # autocast on CUDA only (runtime.amp)

    def loaded() -> Iterator[tuple[tuple[int, int], tuple[int, np.ndarray]]]:
        for i, path in enumerate(tqdm(paths, desc=desc, disable=not progress, unit="img", leave=False)):
            try:
                img = load_image(path)
            except ImageError as exc:
                if not skip_bad:
                    raise
                log.warning("skipping %s", exc)
                failed.append(i)
                continue
            if long_side is not None:
                img = resize_long(img, long_side)
            arr = normalize(img)
            yield arr.shape[:2], (i, arr)

    for batch in size_batches(loaded(), batch_size):
        idx = [i for i, _ in batch]
        with torch.no_grad(), autocast(device, dtype):
            lg, z = model(to_batch([a for _, a in batch], device, channels_last))
        if feats is None:
            feats = np.full((n, z.shape[1]), np.nan, dtype=np.float32)
            logits = np.full((n, lg.shape[1]), np.nan, dtype=np.float32)
        feats[idx] = z.float().cpu().numpy()
        logits[idx] = lg.float().cpu().numpy()
    model.train(was_training)
    if feats is None or logits is None:
        raise ImageError(f"none of the {n} images could be read", path=paths[0] if paths else None,
                         fix="check the image paths")
    return Predictions(feats, logits, failed)
