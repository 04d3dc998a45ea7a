"""Data order as a pure function of the step: resuming, sharding and re-running all draw the same batches.

Epoch e of a stream is a permutation seeded by (seed, stream, e). Global step s reads batch s mod
(batches per epoch) of epoch s // (batches per epoch). With several processes, each takes its slice of
the global batch, so the global batch (and the maths) does not change with the number of GPUs.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


def stream_seed(seed: int, stream: str, epoch: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, zlib.crc32(stream.encode()), epoch])


class StepBatchSampler(Sampler[list[tuple[int, int, int]]]):
    """Yields, for steps ``start..stop-1``, this rank's keys ``(index, epoch, step)`` of the global batch.

    The dataset uses (index, epoch, step) to seed its augmentation, so a sample's crop and flip do not
    depend on which worker or process loads it.
    """

    def __init__(self, n: int, batch_size: int, *, seed: int, stream: str, start: int, stop: int,
                 drop_last: bool = True, rank: int = 0, world: int = 1) -> None:
        if n <= 0:
            raise ValueError(f"stream '{stream}' has no samples")
        self.n, self.batch_size, self.seed, self.stream = n, batch_size, seed, stream
        self.start, self.stop, self.rank, self.world = start, stop, rank, world
        self.drop_last = drop_last
        full = n // batch_size
        self.per_epoch = full if (drop_last and full > 0) else -(-n // batch_size)
        self._perm_epoch = -1
        self._perm = np.arange(n)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng(stream_seed(self.seed, self.stream, epoch)).permutation(self.n)
            self._perm_epoch = epoch
        return self._perm

    def global_batch(self, step: int) -> tuple[int, np.ndarray]:
        epoch, b = divmod(step, self.per_epoch)
        perm = self._permutation(epoch)
        idx = perm[b * self.batch_size:(b + 1) * self.batch_size]
        if len(idx) < self.batch_size and self.n < self.batch_size:
            # fewer samples than one batch: wrap around within the epoch (tiny OoD sets)
            idx = np.resize(perm, self.batch_size)
        return epoch, idx

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for step in range(self.start, self.stop):
            epoch, idx = self.global_batch(step)
            yield [(int(i), epoch, step) for i in idx[self.rank::self.world]]

    def __len__(self) -> int:
        return max(0, self.stop - self.start)
