"""Exact shards: every item in exactly one shard, no padding, no duplicates; torchrun's RANK/WORLD_SIZE."""

from __future__ import annotations

import pytest

from woodseg.errors import ConfigError
from woodseg.runtime.shard import Shard


@pytest.mark.parametrize("n_items", [0, 1, 5, 7, 12])
@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_shards_partition_the_items_exactly(n_items, count):
    items = [f"im{i}" for i in range(n_items)]
    parts = [Shard(i, count).take(items) for i in range(count)]
    flat = [x for p in parts for x in p]
    assert sorted(flat) == sorted(items) and len(flat) == len(set(flat))  # no padding, no duplicates
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert all(p == sorted(p, key=items.index) for p in parts)  # list order kept
    assert [Shard(i, count).positions(n_items) for i in range(count)] == \
        [[items.index(x) for x in p] for p in parts]


def test_parse_and_resolve(monkeypatch):
    assert Shard.parse("1/4") == Shard(1, 4) and Shard.parse("1/4").name == "shard-001-of-004"
    for bad in ("4/4", "-1/2", "x", "1/0"):
        with pytest.raises(ConfigError, match="shard"):
            Shard.parse(bad)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert Shard.resolve(None) == Shard()
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    assert Shard.resolve(None) == Shard(2, 3)
    assert Shard.resolve("0/2") == Shard(0, 2)  # an explicit --shard wins
