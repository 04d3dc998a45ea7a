"""The `cam` stage sharded over processes: the same seed files as one process, a killed shard finishes on
re-run, and --restart on one shard leaves the other's files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from helpers import random_checkpoint, tiny_overrides

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _cam(root: Path, out: Path, *extra: str, wait: bool = True, **over: object) -> subprocess.Popen | None:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    args = [sys.executable, "-m", "woodseg", "cam", "-q", *extra,
            *tiny_overrides(root, out, **{"runtime.cam_batch_size": 2, **over})]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, text
    return None


def _seeds(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for p in sorted(folder.glob("*.npz")):
        with np.load(p, allow_pickle=False) as z:
            out[p.stem] = {k: z[k] for k in z.files}
    return out


def test_two_shards_equal_one_process_kill_resume_and_restart(tiny_voc, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for out in (one, two):
        random_checkpoint(out)
    _cam(tiny_voc, one)
    procs = [_cam(tiny_voc, two, "--shard", f"{i}/2", wait=False) for i in range(2)]
    for p in procs:
        text, _ = p.communicate(timeout=300)
        assert p.returncode == 0, text
    ref, got = _seeds(one / "seeds"), _seeds(two / "seeds")
    assert set(ref) == set(got) and len(ref) == 20
    for k in ref:
        for key in ref[k]:
            np.testing.assert_array_equal(ref[k][key], got[k][key], err_msg=f"{k}: {key}")

    # --restart on shard 0 remakes only shard 0's files
    stamps = {p.name: p.stat().st_mtime_ns for p in (two / "seeds").glob("*.npz")}
    _cam(tiny_voc, two, "--shard", "0/2", "--restart")
    remade = {n for n in stamps if (two / "seeds" / n).stat().st_mtime_ns != stamps[n]}
    shard1 = {f"{i}.npz" for i in _shard_ids(tiny_voc, 1)}
    assert remade.isdisjoint(shard1) and remade == set(stamps) - shard1

    # kill -9 a shard mid-way (slow AdvCAM seeds into a fresh run), then re-run: it finishes
    slow = tmp_path / "slow"
    random_checkpoint(slow)
    over = {"cam.method": "advcam", "cam.adv_iters": 3}
    p = _cam(tiny_voc, slow, "--shard", "1/2", wait=False, **{**over, "runtime.cam_batch_size": 1})
    deadline = time.time() + 240
    while time.time() < deadline and not list((slow / "seeds").glob("*.npz")):
        time.sleep(0.2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    mine = set(_shard_ids(tiny_voc, 1, batch=1))  # AdvCAM runs image by image
    done = {q.stem for q in (slow / "seeds").glob("*.npz")}
    assert done < mine  # killed before the end
    (slow / "seeds" / f".{sorted(mine - done)[0]}.npz.k1ll3d.npz").write_bytes(b"torn")
    _cam(tiny_voc, slow, "--shard", "1/2", **over)
    assert {q.stem for q in (slow / "seeds").glob("*.npz")} == mine
    assert not list((slow / "seeds").glob(".*.npz"))  # the orphaned temporary file is gone


def _shard_ids(root: Path, i: int, batch: int = 2) -> list[str]:
    """Shard i of 2 takes every other batch of the plan (all tiny images have one size)."""
    seen: dict[str, None] = {}
    for split in ("train", "val"):
        seen.update(dict.fromkeys((root / "ImageSets/Segmentation" / f"{split}.txt").read_text().split()))
    ids = list(seen)
    batches = [ids[k:k + batch] for k in range(0, len(ids), batch)]
    return [x for b in batches[i::2] for x in b]
