"""Worker processes for the CPU-bound per-image steps (dense CRF, random walk): one spawned pool per stage.

The workers are *spawned*, not forked. A child forked from a process whose torch (OpenMP) threads have run
can hang in its first parallel region: the masks stage, which computes IRN's boundary maps in the parent
and walks the seeds in the workers (``torch.nn.functional.interpolate``), never finished with 2 forked
workers while it took 8 s in one process. A spawned worker starts a fresh interpreter, so the pool is
made once per stage and kept for all its batches; each worker runs torch on one thread, since the pool
already has one process per core asked for.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from types import TracebackType
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


class WorkerPool:
    """``pool.map(fn, items)`` is ``[fn(x) for x in items]`` over ``processes`` spawned workers, in input order.

    ``processes`` None means one per CPU core; 1 (or fewer) runs every call in this process, starting
    nothing (tests, debugging). The workers start on the first call that has more than one item and live
    until the ``with`` block ends. ``fn`` must be a module-level function, and items and results picklable.
    Results keep the input order, so a sharded caller writes the same files however the work is split.
    """

    def __init__(self, processes: int | None = None) -> None:
        self.processes = (os.cpu_count() or 1) if processes is None else processes
        self._executor: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[T], R], items: Iterable[T], chunksize: int = 1) -> list[R]:
        items = list(items)
        if self.processes <= 1 or len(items) <= 1:
            return [fn(x) for x in items]
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=self.processes, initializer=_one_thread,
                                                 mp_context=multiprocessing.get_context("spawn"))
        return list(self._executor.map(fn, items, chunksize=chunksize))

    def close(self, wait: bool = True) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(wait=exc_type is None)  # on Ctrl+C or an error: do not wait for queued work

