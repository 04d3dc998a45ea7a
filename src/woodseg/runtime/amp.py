"""Mixed precision on GPUs only: the one policy for training (the engine) and inference (seeds, OoD scoring).

``runtime.amp: auto`` runs forward passes under ``torch.autocast`` when the device is CUDA: bfloat16 where
the GPU supports it (Ampere and newer), else float16, which in training needs a ``GradScaler`` (float16
gradients underflow). On a CPU nothing changes, whatever the setting: CPU bf16 autocast is many times slower
than float32 on CPUs without bf16 units, and seeds computed on a CPU stay bit-for-bit float32.
``runtime.amp: off`` keeps float32 everywhere. Outputs leave a forward pass as float32 (callers ``.float()``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Literal

import torch

AmpMode = Literal["auto", "off"]
_MODE: list[AmpMode] = ["auto"]


def set_amp_mode(mode: AmpMode) -> None:
    """Process-wide default of :func:`amp_dtype` (set once per stage from ``runtime.amp``, like the threads)."""
    if mode not in ("auto", "off"):
        raise ValueError(f"runtime.amp must be 'auto' or 'off', not {mode!r}")
    _MODE[0] = mode


def amp_mode() -> AmpMode:
    return _MODE[0]


def amp_dtype(device: str | torch.device, mode: AmpMode | None = None,
              bf16_supported: Callable[[], bool] | None = None) -> torch.dtype | None:
    """The autocast dtype for ``device``: None (float32) on a CPU or with ``off``; bf16 if the GPU has it, else fp16.

    ``bf16_supported`` defaults to ``torch.cuda.is_bf16_supported`` (a parameter so tests can fake a GPU).
    """
    mode = amp_mode() if mode is None else mode
    if mode not in ("auto", "off"):
        raise ValueError(f"runtime.amp must be 'auto' or 'off', not {mode!r}")
    if mode == "off" or torch.device(device).type != "cuda":
        return None
    supported = bf16_supported or torch.cuda.is_bf16_supported
    return torch.bfloat16 if supported() else torch.float16


@contextlib.contextmanager
def autocast(device: str | torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` on CUDA with ``dtype``; nothing at all when ``dtype`` is None (float32)."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=torch.device(device).type, dtype=dtype):
        yield


def grad_scaler(device: str | torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    """A ``GradScaler`` for float16 training (its gradients underflow without one); None otherwise."""
    if dtype != torch.float16:
        return None
    return torch.amp.GradScaler(torch.device(device).type)
