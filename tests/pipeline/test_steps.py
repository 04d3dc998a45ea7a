"""Hard-OoD mining reuses its review only when made with the same checkpoint, pool and threshold."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ood"))
from ood_helpers import make_checkpoint, make_images  # noqa: E402

from woodseg.data.ood_list import read_ood_list  # noqa: E402
from woodseg.ood.pool import write_pool  # noqa: E402
from woodseg.pipeline.steps import mine_hard_ood  # noqa: E402


@pytest.fixture()
def pool(tmp_path: Path):
    folder = tmp_path / "pool"
    names = make_images(folder, 8, seed=2)
    return read_ood_list(write_pool(tmp_path / "pool.txt", names, root=folder, source="test"), folder), folder


def test_mining_is_redone_when_its_checkpoint_or_threshold_changes(tmp_path, pool):
    torch.set_num_threads(1)
    ood, root = pool
    ckpt = make_checkpoint(tmp_path / "f_in.pt", seed=0)
    out = tmp_path / "ood"

    def mine(threshold: float = 0.0):
        return mine_hard_ood(ckpt, ood, root, out, is_positive=lambda e, c: False, threshold=threshold,
                             per_class=2, long_side=32, batch_size=4, progress=False)

    mine()
    stamp = (out / "review.json").stat().st_mtime_ns
    mine()
    assert (out / "review.json").stat().st_mtime_ns == stamp  # same inputs: reused
    mine(threshold=0.01)
    assert (out / "review.json").stat().st_mtime_ns != stamp  # another threshold: ranked and reviewed again
    stamp = (out / "review.json").stat().st_mtime_ns
    make_checkpoint(ckpt, seed=7)  # F_in's file replaced
    mine(threshold=0.01)
    assert (out / "review.json").stat().st_mtime_ns != stamp
