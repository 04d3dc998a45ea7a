"""Multi-process training with torchrun (DDP): set-up, rank helpers and a teardown that exits cleanly.

``torchrun --nproc_per_node=N -m woodseg train ...`` sets RANK/WORLD_SIZE/LOCAL_RANK; everything else
runs single-process. NCCL on GPUs, Gloo on the CPU.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from woodseg.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def env_rank() -> int:
    """This process's rank as torchrun sets it (0 when not launched by torchrun)."""
    return int(os.environ.get("RANK", "0"))


def init_distributed(device: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = env_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local)


def steps_per_epoch(n_images: int, batch_size: int, info: DistInfo, *, key: str, split: str,
                    drop_last: bool = True) -> int:
    """Optimiser steps per epoch of a global batch of ``batch_size`` split over ``info.world`` processes.

    The global batch is the single-process one, so it must divide by the process count; the split must hold
    at least one batch. The one check (and its messages) of every trained stage; rank 0 logs the batch.
    """
    if batch_size % info.world:
        raise ConfigError(f"{key}={batch_size} is not divisible by the {info.world} processes",
                          fix="use a batch size that is a multiple of the process count")
    steps = n_images // batch_size if drop_last else -(-n_images // batch_size)
    if steps == 0:
        raise DataError(f"split '{split}' has {n_images} images, fewer than one batch of {batch_size}",
                        fix=f"lower {key}" + (" or set train.drop_last=false" if key == "train.batch_size" else ""))
    if info.is_main:
        log.info("%s: global batch %d = %d process(es) x %d, %d steps per epoch", key.split(".")[0], batch_size,
                 info.world, batch_size // info.world, steps)
    return steps


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


_held = 0  # > 0 while a caller (``woodseg run``) keeps one process group for several stages


def teardown(info: DistInfo) -> None:
    """Collect, synchronise, then destroy the group: avoids the 'terminate called without an active
    exception' abort that Gloo processes otherwise hit at exit now and then. Inside :func:`hold_process_group`
    the group is kept (collect and synchronise only): creating a second Gloo group after destroying the first
    one can fail to connect."""
    if info.enabled and dist.is_initialized():
        gc.collect()
        dist.barrier()
        if not _held:
            dist.destroy_process_group()


@contextmanager
def hold_process_group(device: str) -> Iterator[DistInfo]:
    """One process group for every stage run inside (no-op in a single process), destroyed once at the end."""
    global _held
    info = init_distributed(device)
    _held += 1
    try:
        yield info
    finally:
        _held -= 1
        teardown(info)



def stage_barrier(device: str) -> None:
    """Wait for every torchrun process (no-op in a single process); used between pipeline stages."""
    barrier(init_distributed(device))
