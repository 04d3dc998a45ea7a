"""The one device and thread resolver of every stage (training, seeds, ranking, centres)."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto", local_rank: int | None = None) -> torch.device:
    """``auto`` -> CUDA if available, else CPU. Under torchrun (``local_rank`` given) CUDA is this process's GPU."""
    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and local_rank is not None:
        return torch.device("cuda", local_rank)
    return torch.device(name)


def set_threads(threads: int | None) -> None:
    """Set torch's CPU threads; ``None`` leaves torch's own choice."""
    if threads:
        torch.set_num_threads(threads)


def stage_device(device: str = "auto", threads: int | None = None) -> torch.device:
    """Set threads and resolve the device of a stage; under torchrun a CUDA device is LOCAL_RANK's GPU."""
    import os

    set_threads(threads)
    local = int(os.environ["LOCAL_RANK"]) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None
    return resolve_device(device, local)
