"""Two-process DDP training on the CPU (Gloo) through torchrun, as a user's multi-GPU run is launched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import tiny_overrides
from woodseg.fsutil import read_jsonl


@pytest.mark.slow
def test_torchrun_two_processes(tiny_voc, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = Path(shutil.which("torchrun") or "torchrun")
    base = tmp_path / "base"
    over = tiny_overrides(tiny_voc, base, **{"wood.variant": "none", "runtime.threads": 1})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "woodseg", "train", "-q", *over]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    state = torch.load(base / "classifier/last.pt", weights_only=False)
    assert state["finished"] and state["step"] == 3  # 24 images / global batch 8, one epoch
    records = read_jsonl(base / "classifier/metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]  # only rank 0 logs
    assert proc.stdout.count("classifier:") == 1  # and only rank 0 prints the result line
    # W-OoD with centres computed on rank 0 and shared through the file
    wood = tmp_path / "wood"
    over = tiny_overrides(tiny_voc, wood, **{"wood.variant": "official", "runtime.threads": 1,
                                             "train.init_from": base / "classifier/last.pt"})
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "woodseg", "train", "-q",
                           *over], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert (wood / "classifier/centres.npz").exists()


@pytest.mark.slow
def test_torchrun_runs_every_stage_with_per_image_stages_sharded(tiny_voc, tmp_path):
    """`torchrun -m woodseg run`: DDP training, then seeds and evaluation split exactly over the processes."""
    import json

    import numpy as np

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = Path(shutil.which("torchrun") or "torchrun")
    out = tmp_path / "run"
    over = tiny_overrides(tiny_voc, out, **{"wood.variant": "none", "runtime.cam_batch_size": 2})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "woodseg", "run", "-q", *over],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert sorted(p.name for p in (out / "seeds" / "shards").iterdir()) == ["shard-000-of-002.json",
                                                                             "shard-001-of-002.json"]
    sharded = json.loads((out / "eval" / "seeds.json").read_text())
    # the same seeds and numbers as one process
    one = tmp_path / "one"
    shutil.copytree(out / "classifier", one / "classifier")
    single = tiny_overrides(tiny_voc, one, **{"wood.variant": "none", "runtime.cam_batch_size": 2})
    proc = subprocess.run([sys.executable, "-m", "woodseg", "run", "-q", "--from", "cam", *single],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for f in sorted((out / "seeds").glob("*.npz")):
        with np.load(f) as a, np.load(one / "seeds" / f.name) as b:
            np.testing.assert_array_equal(a["high_res"], b["high_res"])
    assert json.loads((one / "eval" / "seeds.json").read_text())["train"]["best"] == sharded["train"]["best"]
