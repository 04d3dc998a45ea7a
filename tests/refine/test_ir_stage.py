"""The ``ir_labels`` stage: 2 shards equal 1, resume after an interruption, remade seeds recompute,
seeds of another class list are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import random_checkpoint
from refine_helpers import copy_run, seeded_run
from woodseg.data.images import load_mask
from woodseg.errors import DataError
from woodseg.refine.ir_labels import IR_THRESHOLDS
from woodseg.refine.ir_stage import ir_labels_stage
from woodseg.runtime.shard import Shard
from woodseg.seeds.stage import cam_stage


@pytest.fixture(scope="module")
def seeded(tiny_voc, tmp_path_factory):
    out = tmp_path_factory.mktemp("ir") / "run"
    seeded_run(tiny_voc, out)
    return out


def _labels(folder):
    return {p.stem: load_mask(p) for p in sorted(folder.glob("*.png"))}


def test_two_shards_equal_one_and_resume(tiny_voc, seeded, tmp_path):
    one = copy_run(seeded, tmp_path / "one", tiny_voc)
    whole = _labels(ir_labels_stage(one, progress=False))
    assert len(whole) == 24  # train_aug
    values = np.unique(np.concatenate([v.ravel() for v in whole.values()]))
    assert set(values.tolist()) <= {0, 1, 2, 3, 255} and 255 in values and 0 in values

    two = copy_run(seeded, tmp_path / "two", tiny_voc)
    ir_labels_stage(two, progress=False, shard=Shard(1, 2))
    half = _labels(two.out_dir / "ir_labels")
    assert 0 < len(half) < 24
    ir_labels_stage(two, progress=False, shard=Shard(0, 2))
    sharded = _labels(two.out_dir / "ir_labels")
    assert sharded.keys() == whole.keys() and all(np.array_equal(sharded[k], whole[k]) for k in whole)

    # an interrupted run (files missing, a temporary file of a killed write) resumes and remakes only those
    folder = one.out_dir / "ir_labels"
    gone = sorted(folder.glob("*.png"))[:3]
    kept = sorted(folder.glob("*.png"))[-1]  # another batch of the plan than the removed ones
    stamp = kept.stat().st_mtime_ns
    for p in gone:
        p.unlink()
    (folder / f".{gone[0].name}.tmp123.png").write_bytes(b"half")
    ir_labels_stage(one, progress=False)
    assert _labels(folder).keys() == whole.keys() and kept.stat().st_mtime_ns == stamp
    assert not list(folder.glob(".*.png"))
    assert all(np.array_equal(load_mask(p), whole[p.stem]) for p in gone)


def test_remade_seeds_recompute_and_other_classes_are_refused(tiny_voc, seeded, tmp_path):
    cfg = copy_run(seeded, tmp_path / "run", tiny_voc)
    folder = ir_labels_stage(cfg, progress=False)
    probe = sorted(folder.glob("*.png"))[0]
    stamp = probe.stat().st_mtime_ns
    ir_labels_stage(cfg, progress=False)
    assert probe.stat().st_mtime_ns == stamp  # unchanged inputs: nothing redone

    # another classifier: the cam stage remakes the seeds, so their index changes and IR labels are remade
    ckpt = cfg.out_dir / "classifier" / "last.pt"
    ckpt.unlink()
    ckpt.parent.rmdir()
    import torch

    torch.manual_seed(5)
    random_checkpoint(cfg.out_dir)
    cam_stage(cfg, progress=False, restart=True)  # the copied run's seeds name the other folder's checkpoint
    ir_labels_stage(cfg, progress=False)
    assert probe.stat().st_mtime_ns != stamp

    index = cfg.out_dir / "seeds" / "index.json"
    data = json.loads(index.read_text())
    index.write_text(json.dumps({**data, "classes": ["cat", "dog", "cow"]}))
    with pytest.raises(DataError, match="seeds were made for classes"):
        ir_labels_stage(cfg, progress=False)


def test_changed_thresholds_are_refused_without_restart(tiny_voc, seeded, tmp_path):
    cfg = copy_run(seeded, tmp_path / "run", tiny_voc)
    ir_labels_stage(cfg, progress=False)
    other = copy_run(seeded, tmp_path / "unused", tiny_voc)  # same config keys, another preset below
    other = other.model_copy(update={"out_dir": cfg.out_dir})
    other.ir_labels.preset = "irn"
    with pytest.raises(DataError, match="another protocol"):
        ir_labels_stage(other, progress=False)
    ir_labels_stage(other, progress=False, restart=True)


def test_thresholds_resolve_from_presets():
    from woodseg.config import IrLabelsConfig
    from woodseg.errors import ConfigError
    from woodseg.refine.ir_stage import ir_thresholds

    assert ir_thresholds(IrLabelsConfig(preset="wood")) == IR_THRESHOLDS["wood"]
    t = ir_thresholds(IrLabelsConfig(preset="irn", bg=0.1))
    assert (t.fg, t.bg) == (0.30, 0.1)
    with pytest.raises(ConfigError, match="bg <= ir_labels.fg"):
        ir_thresholds(IrLabelsConfig(preset="irn", bg=0.5))
