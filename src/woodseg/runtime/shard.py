"""Exact sharding of a list of items over processes or machines.

Shard i of n takes positions i, i+n, i+2n, ...: every item in exactly one shard, no padding and no
duplicates (unlike ``DistributedSampler``, which pads to equal lengths). ``--shard i/n`` names it; under
``torchrun`` the shard is RANK/WORLD_SIZE.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from woodseg.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            i, n = (int(t) for t in text.split("/"))
        except ValueError:
            raise ConfigError(f"bad shard '{text}'", fix="write it as i/n, e.g. 0/4 (0-based index / shard count)") from None
        if n < 1 or not 0 <= i < n:
            raise ConfigError(f"bad shard '{text}': need 0 <= i < n", fix="shards of 4 are 0/4, 1/4, 2/4, 3/4")
        return cls(i, n)

    @classmethod
    def resolve(cls, text: str | None = None) -> Shard:
        """``--shard i/n`` if given, else RANK/WORLD_SIZE under torchrun, else the whole list (0/1)."""
        if text:
            return cls.parse(text)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1:
            return cls(int(os.environ.get("RANK", "0")), world)
        return cls()

    def positions(self, num_items: int) -> list[int]:
        return list(range(self.index, num_items, self.count))

    def take(self, items: Sequence[T]) -> list[T]:
        """This shard's items, in list order."""
        return list(items[self.index::self.count])

    @property
    def name(self) -> str:
        return f"shard-{self.index:03d}-of-{self.count:03d}"

    @property
    def whole(self) -> bool:
        return self.count == 1
