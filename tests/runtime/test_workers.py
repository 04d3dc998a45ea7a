"""runtime/workers.py: a pool of spawned workers, kept for a stage, that maps in input order."""

from __future__ import annotations

import os

import pytest

from woodseg.runtime.workers import WorkerPool

FLAG = "as imported"


def _flag(_: int) -> str:
    return FLAG


def _pid(_: int) -> int:
    return os.getpid()


def test_map_keeps_order_and_matches_serial() -> None:
    items = [-3, 1, -4, 1, -5, 9, -2]
    with WorkerPool(2) as pool:
        assert pool.map(abs, items) == [abs(x) for x in items]
        assert pool.map(abs, items, chunksize=3) == [abs(x) for x in items]
    assert WorkerPool(1).map(abs, items) == [abs(x) for x in items]


def test_workers_are_spawned_not_forked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A forked worker inherits the parent's memory (and torch's OpenMP state, which can hang it); a spawned
    one imports the module afresh, so it does not see a value the parent changed after import."""
    monkeypatch.setattr(__import__(__name__), "FLAG", "changed in the parent")
    with WorkerPool(2) as pool:
        assert pool.map(_flag, [0, 1, 2]) == ["as imported"] * 3


def test_one_pool_serves_every_batch_and_one_process_starts_none() -> None:
    with WorkerPool(2) as pool:
        first = set(pool.map(_pid, range(8)))
        second = set(pool.map(_pid, range(8)))
    assert os.getpid() not in first
    assert len(first | second) <= 2  # the same (at most two) workers, not a new pool per batch
    assert WorkerPool(1).map(_pid, range(3)) == [os.getpid()] * 3
