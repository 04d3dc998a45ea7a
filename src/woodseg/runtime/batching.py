"""Size-grouped batching, the one way every inference loop batches images.

Inputs of equal size (the group key) share a batch; a batch is released when it holds ``batch_size``
items, and the remaining partial batches at the end in the order their sizes first appeared. Nothing is
padded or resized to fit, so a mixed-size dataset stays exact.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import TypeVar

import numpy as np
import torch

from woodseg.data.transforms import hwc_to_tensor

T = TypeVar("T")


def size_batches(items: Iterable[tuple[Hashable, T]], batch_size: int) -> Iterator[list[T]]:
    """Yield batches of items with equal keys, full ones as soon as they fill, then the partial ones."""
    groups: dict[Hashable, list[T]] = defaultdict(list)
    for key, item in items:
        group = groups[key]
        group.append(item)
        if len(group) == batch_size:
            yield group
            groups[key] = []
    for group in groups.values():
        if group:
            yield group


def to_batch(arrays: Sequence[np.ndarray], device: str | torch.device, channels_last: bool) -> torch.Tensor:
    """Stack HWC float arrays (already normalised) into one NCHW tensor on ``device``."""
    x = torch.stack([hwc_to_tensor(a) for a in arrays]).to(device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def is_channels_last(model: torch.nn.Module) -> bool:
    """Whether the model's convolution weights are NHWC (inputs should match)."""
    for p in model.parameters():
        if p.dim() == 4:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False
