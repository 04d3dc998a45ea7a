"""The `eval` stage: sharded parts sum to the one-process result, an unchanged re-run only re-reads, and
missing seeds are named."""

from __future__ import annotations

import pytest

from helpers import random_checkpoint, tiny_overrides
from woodseg.config import load_config
from woodseg.errors import DataError
from woodseg.evaluate.stage import eval_stage
from woodseg.runtime.paths import RunPaths
from woodseg.runtime.shard import Shard
from woodseg.seeds.stage import cam_stage


def test_sharded_eval_equals_one_process_and_skips_when_unchanged(tiny_voc, tmp_path):
    out = tmp_path / "run"
    random_checkpoint(out)
    cfg = load_config(None, tiny_overrides(tiny_voc, out))
    cam_stage(cfg, progress=False)
    whole = eval_stage(cfg, progress=False)
    path = RunPaths(out).eval("seeds")
    stamp = path.stat().st_mtime_ns
    assert eval_stage(cfg, progress=False) == whole and path.stat().st_mtime_ns == stamp  # nothing changed

    path.unlink()
    assert eval_stage(cfg, progress=False, shard=Shard(0, 3)) is None  # other parts still missing
    assert eval_stage(cfg, progress=False, shard=Shard(2, 3)) is None
    merged = eval_stage(cfg, progress=False, shard=Shard(1, 3))
    for split in ("train", "val"):
        assert merged[split]["best"] == whole[split]["best"] and merged[split]["curve"] == whole[split]["curve"]

    seed = sorted((out / "seeds").glob("*.npz"))[3]
    seed.unlink()
    with pytest.raises(DataError, match=f"seeds of split .* missing: \\['{seed.stem}'\\]"):
        eval_stage(cfg, progress=False)
