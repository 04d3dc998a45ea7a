"""Score candidate images with a trained classifier: p(c) = sigmoid(z_c) per image and class (Sec. 3.1).

Images are resized so the long side is ``long_side`` (bicubic, as everywhere; see
:mod:`woodseg.ood.resolution` for how it is chosen), normalised, and batched by equal size (no padding,
no resize to fit). A score is the image's own forward pass, but batched convolutions may round the last
float32 bit differently with the batch's size, so ``rank`` records the batch size with its parts and
refuses to resume or merge them under another one. One forward
pass gives the CAM and the logits (their spatial mean: the classifier is linear and bias-free), so the
CAM-compactness flag costs nothing extra. This is the in-process core; ``rank.py`` adds files, shards
and resume on top, and the demo calls :func:`score_pool` directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from woodseg.data.dataset import OodSet
from woodseg.data.images import load_image
from woodseg.data.transforms import normalize, resize_long
from woodseg.errors import ConfigError, DataError, ImageError
from woodseg.ood.flags import FLAG_NAMES, compactness_from_cams, stability_scores
from woodseg.runtime.batching import is_channels_last, size_batches, to_batch
from woodseg.runtime.device import resolve_device

log = logging.getLogger(__name__)

OnBadImage = Literal["error", "skip"]


@dataclass
class ChunkScores:
    """Scores for a run of pool positions; rows of unreadable images are NaN and listed in ``failed``."""

    indices: np.ndarray  # int64 [k]
    scores: np.ndarray  # float32 [k, C]
    compactness: np.ndarray  # float32 [k, C], NaN when not computed
    stability: np.ndarray  # float32 [k, C], NaN when not computed (or p(c) < threshold for every c)
    failed: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class PoolScores:
    """Whole-pool result of :func:`score_pool_full`, rows in pool order."""

    scores: np.ndarray
    compactness: np.ndarray
    stability: np.ndarray
    failed: list[tuple[int, str]]


def check_flags(flags: Sequence[str]) -> tuple[str, ...]:
    unknown = [f for f in flags if f not in FLAG_NAMES]
    if unknown:
        raise ConfigError(f"unknown flag(s) {unknown}", fix=f"use any of: {', '.join(FLAG_NAMES)}")
    return tuple(dict.fromkeys(flags))


def iter_scores(
    model: torch.nn.Module,
    ood_set: OodSet,
    class_names: Sequence[str],
    *,
    indices: Sequence[int] | None = None,
    batch_size: int = 16,
    long_side: int | None = 500,
    device: str | torch.device = "cpu",
    on_bad_image: OnBadImage = "error",
    flags: Sequence[str] = (),
    threshold: float = 0.5,
    chunk_size: int | None = None,
    workers: int = 0,
) -> Iterator[ChunkScores]:
    """Yield scores chunk by chunk (default ``4 * batch_size`` images) for ``indices`` of the pool (default all).

    ``workers`` > 0 decodes images in that many threads and prefetches the next chunk while the model
    runs. Stability is computed only for images with p(c) >= ``threshold`` for some class.
    """
    flags = check_flags(flags)
    num_classes = len(class_names)
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}", fix="pass --batch-size 1 or more")
    order = list(range(len(ood_set))) if indices is None else [int(i) for i in indices]
    chunk_size = chunk_size or 4 * batch_size
    device = resolve_device(device)
    was_training = model.training
    model.eval()
    _check_outputs(model, num_classes, device)
    chunks = [order[i:i + chunk_size] for i in range(0, len(order), chunk_size)]

    def load_one(i: int) -> np.ndarray | ImageError:
        try:
            img = load_image(ood_set.paths[i])
        except ImageError as exc:
            if on_bad_image == "error":
                raise
            return exc
        return resize_long(img, long_side) if long_side else img

    pool = ThreadPoolExecutor(workers, thread_name_prefix="ood-load") if workers > 0 else None
    prefetch = ThreadPoolExecutor(1, thread_name_prefix="ood-prefetch") if workers > 0 else None

    def load_chunk(idx: list[int]) -> list[np.ndarray | ImageError]:
        return list(pool.map(load_one, idx)) if pool is not None else [load_one(i) for i in idx]

    try:
        pending = prefetch.submit(load_chunk, chunks[0]) if prefetch is not None and chunks else None
        for k, idx in enumerate(chunks):
            if prefetch is not None:
                assert pending is not None
                images = pending.result()
                if k + 1 < len(chunks):
                    pending = prefetch.submit(load_chunk, chunks[k + 1])
            else:
                images = load_chunk(idx)
            yield _score_chunk(model, idx, images, num_classes, batch_size=batch_size, device=device,
                               flags=flags, threshold=threshold, ood_set=ood_set)
    finally:
        model.train(was_training)
        for ex in (prefetch, pool):
            if ex is not None:
                ex.shutdown(wait=True, cancel_futures=True)


def _check_outputs(model: torch.nn.Module, num_classes: int, device: torch.device) -> None:
    outputs = getattr(model, "num_outputs", None)
    if outputs is not None and outputs < num_classes:
        raise ConfigError(f"the classifier has {outputs} outputs but {num_classes} class names were given",
                          fix="pass the class names stored with the checkpoint")
    if num_classes == 0:
        raise ConfigError("no class names given", fix="pass the classifier's class names")


@torch.no_grad()
def _score_chunk(model: torch.nn.Module, idx: list[int], images: list[np.ndarray | ImageError], num_classes: int, *,
                 batch_size: int, device: torch.device, flags: tuple[str, ...], threshold: float,
                 ood_set: OodSet) -> ChunkScores:
    k = len(idx)
    scores = np.full((k, num_classes), np.nan, dtype=np.float32)
    compact = np.full((k, num_classes), np.nan, dtype=np.float32)
    stable = np.full((k, num_classes), np.nan, dtype=np.float32)
    failed: list[tuple[int, str]] = []
    for row, img in enumerate(images):
        if isinstance(img, ImageError):
            failed.append((idx[row], str(img)))
            log.warning("skipping unreadable image %s", img)
    readable = ((img.shape[:2], row) for row, img in enumerate(images) if not isinstance(img, ImageError))
    channels_last = is_channels_last(model)
    has_cam = hasattr(model, "cam_raw")
    for batch in size_batches(readable, batch_size):
        x = to_batch([normalize(images[r]) for r in batch], device, channels_last)  # type: ignore[arg-type]
        if has_cam:
            cams = model.cam_raw(x)[:, :num_classes].float()
            logits = cams.mean(dim=(2, 3))
        else:
            cams = None
            logits = model(x)[0][:, :num_classes].float()
        probs = torch.sigmoid(logits).cpu().numpy()
        if not np.isfinite(probs).all():
            bad = [ood_set.ids[idx[r]] for r, ok in zip(batch, np.isfinite(probs).all(1), strict=True) if not ok]
            raise DataError(f"the classifier gave non-finite scores for {bad[:3]}", path=ood_set.source or None,
                            fix="check the checkpoint (a diverged training run?)")
        scores[batch] = probs
        if "compactness" in flags and cams is not None:
            compact[batch] = compactness_from_cams(cams.cpu().numpy())
        if "stability" in flags:
            for r, p in zip(batch, probs, strict=True):
                if p.max() >= threshold:
                    stable[r] = stability_scores(model, images[r], num_classes, device=device,  # type: ignore[arg-type]
                                                 base_probs=p)
    return ChunkScores(np.asarray(idx, dtype=np.int64), scores, compact, stable, failed)


def score_pool_full(model: torch.nn.Module, ood_set: OodSet, class_names: Sequence[str], *, batch_size: int = 16,
                    long_side: int | None = 500, device: str | torch.device = "cpu",
                    progress: Callable[[int], None] | None = None, on_bad_image: OnBadImage = "error",
                    flags: Sequence[str] = (), threshold: float = 0.5, workers: int = 0) -> PoolScores:
    """Score every image of the pool in memory; see :func:`iter_scores` for the arguments."""
    if len(ood_set) == 0:
        raise DataError("the candidate pool is empty", path=ood_set.source or None, fix="build a pool with images first")
    n, c = len(ood_set), len(class_names)
    out = PoolScores(*(np.full((n, c), np.nan, dtype=np.float32) for _ in range(3)), failed=[])
    for ch in iter_scores(model, ood_set, class_names, batch_size=batch_size, long_side=long_side, device=device,
                          on_bad_image=on_bad_image, flags=flags, threshold=threshold, workers=workers):
        out.scores[ch.indices] = ch.scores
        out.compactness[ch.indices] = ch.compactness
        out.stability[ch.indices] = ch.stability
        out.failed.extend(ch.failed)
        if progress is not None:
            progress(len(ch.indices))
    return out


def score_pool(model: torch.nn.Module, ood_set: OodSet, class_names: Sequence[str], *, batch_size: int = 16,
               long_side: int | None = 500, device: str | torch.device = "cpu",
               progress: Callable[[int], None] | None = None, on_bad_image: OnBadImage = "error",
               workers: int = 0) -> np.ndarray:
    """p(c) = sigmoid(logit_c) for every pool image: float32 [N, C], NaN rows for skipped unreadable images."""
    return score_pool_full(model, ood_set, class_names, batch_size=batch_size, long_side=long_side, device=device,
                           progress=progress, on_bad_image=on_bad_image, workers=workers).scores
