"""The per-image driver: resume, exact shards, restart of one shard, temp-file cleanup, protocol, verify."""

from __future__ import annotations

import json

import numpy as np
import pytest

from woodseg.errors import DataError, ImageError
from woodseg.fsutil import atomic_write_text
from woodseg.runtime.driver import ItemFolder, run_items, verify_items
from woodseg.runtime.shard import Shard

IDS = [f"im{i}" for i in range(7)]
SIZES = {i: (4, 4) if k % 3 else (6, 5) for k, i in enumerate(IDS)}


def _run(folder, ids=IDS, *, protocol=None, inputs=None, shard=Shard(), restart=False, batches=None,
         bad=(), on_bad_image="error"):
    def load(i):
        if i in bad:
            raise ImageError("cannot decode", path=f"{i}.png")
        return np.zeros(SIZES[i])

    def compute(batch):
        if batches is not None:
            batches.append([i for i, _ in batch])
        assert len({x.shape for _, x in batch}) == 1  # equal sizes only, no padding
        return [f"{i}:{x.shape}" for i, x in batch]

    def key(i):
        if i in bad and on_bad_image == "header":
            raise ImageError("not a readable image", path=f"{i}.png")
        return SIZES[i]

    return run_items(ItemFolder(folder, ".txt"), ids, protocol=protocol or {"p": 1}, inputs=inputs, key=key,
                     load=load,
                     compute=compute, write=atomic_write_text, batch_size=2, shard=shard, restart=restart,
                     on_bad_image="skip" if on_bad_image == "header" else on_bad_image, progress=False)


def test_size_grouped_batches_and_resume(tmp_path):
    batches = []
    rep = _run(tmp_path, batches=batches)
    assert sorted(rep.written) == IDS and rep.already_done == 0
    assert batches == [["im1", "im2"], ["im0", "im3"], ["im4", "im5"], ["im6"]]  # full ones first, then the rest
    assert (tmp_path / "im0.txt").read_text() == "im0:(6, 5)"
    (tmp_path / "im4.txt").unlink()
    batches.clear()
    again = _run(tmp_path, batches=batches)
    assert batches == [["im4", "im5"]]  # the unfinished batch is computed whole: same batch, same numbers
    assert again.already_done == 5


def test_shards_take_whole_batches_of_one_plan(tmp_path):
    seen = []
    for i in range(3):
        _run(tmp_path, shard=Shard(i, 3), batches=seen)
    assert sorted(map(tuple, seen)) == sorted(map(tuple, [["im1", "im2"], ["im0", "im3"], ["im4", "im5"], ["im6"]]))


def test_shards_restart_and_orphans_touch_only_their_own_files(tmp_path):
    for i in range(2):
        _run(tmp_path, shard=Shard(i, 2))
    verify_items(ItemFolder(tmp_path, ".txt"), IDS)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.txt")}
    # a killed write of each shard left a temporary file
    (tmp_path / ".im0.txt.k1ll3d.txt").write_text("half")
    (tmp_path / ".im1.txt.k1ll3d.txt").write_text("half")
    rep = _run(tmp_path, shard=Shard(0, 2), restart=True)
    # the plan is [im1 im2] [im0 im3] [im4 im5] [im6]: shard 0 holds batches 0 and 2
    assert sorted(rep.written) == ["im1", "im2", "im4", "im5"] and rep.removed == 4
    assert not (tmp_path / ".im1.txt.k1ll3d.txt").exists()
    assert (tmp_path / ".im0.txt.k1ll3d.txt").exists()  # shard 1's: it may still be writing it
    for i in ("im0", "im3", "im6"):  # shard 1's files survive shard 0's restart
        assert (tmp_path / f"{i}.txt").stat().st_mtime_ns == stamps[tmp_path / f"{i}.txt"]


def test_protocol_change_is_refused_input_change_remakes_each_shard(tmp_path):
    _run(tmp_path, inputs={"classifier": "aaa"}, shard=Shard(0, 2))
    _run(tmp_path, inputs={"classifier": "aaa"}, shard=Shard(1, 2))
    with pytest.raises(DataError, match="another protocol.*p: 1 -> 2"):
        _run(tmp_path, protocol={"p": 2}, inputs={"classifier": "aaa"})
    assert _run(tmp_path, inputs={"classifier": "aaa"}, shard=Shard(0, 2)).written == []
    # a new classifier: shard 1 moves on first, shard 0 still sees its own files are stale
    assert sorted(_run(tmp_path, inputs={"classifier": "bbb"}, shard=Shard(1, 2)).written) == ["im0", "im3", "im6"]
    assert sorted(_run(tmp_path, inputs={"classifier": "bbb"}, shard=Shard(0, 2)).written) == \
        ["im1", "im2", "im4", "im5"]
    assert json.loads((tmp_path / "index.json").read_text())["inputs"] == {"classifier": "bbb"}


def test_bad_images_and_verify_names_missing_ids(tmp_path):
    with pytest.raises(ImageError):
        _run(tmp_path, bad={"im3"})
    rep = _run(tmp_path, bad={"im3"}, on_bad_image="skip")
    assert rep.skipped == ["im3"]
    with pytest.raises(DataError, match=r"1 of 7 items are missing: \['im3'\] \(1 of them skipped"):
        verify_items(ItemFolder(tmp_path, ".txt"), IDS)
    (tmp_path / "im5.txt").unlink()
    with pytest.raises(DataError, match="2 of 7 .*im3.*im5"):
        verify_items(ItemFolder(tmp_path, ".txt"), IDS)
    header = _run(tmp_path / "h", bad={"im2"}, on_bad_image="header")  # unreadable even before decoding
    assert header.skipped == ["im2"] and "im2" not in header.written
