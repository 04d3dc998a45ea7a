"""The ``masks`` stage: 2 shards equal 1, an interrupted run resumes, a retrained IRN recomputes, an IRN
of other classes and a seed of another image size are refused; the walk settings resolve from presets."""

from __future__ import annotations

import numpy as np
import pytest

from refine_helpers import copy_run, seeded_run
from woodseg.config import WalkConfig
from woodseg.data.images import load_mask
from woodseg.errors import DataError
from woodseg.models.checkpoint import load_checkpoint, save_checkpoint
from woodseg.refine.ir_stage import ir_labels_stage
from woodseg.refine.irn_stage import irn_stage
from woodseg.refine.masks_stage import masks_stage, walk_params
from woodseg.runtime.shard import Shard
from woodseg.seeds.store import load_seed, save_seed


@pytest.fixture(scope="module")
def trained(tiny_voc, tmp_path_factory):
    out = tmp_path_factory.mktemp("masks") / "run"
    cfg = seeded_run(tiny_voc, out)
    ir_labels_stage(cfg, progress=False)
    irn_stage(cfg, progress=False)
    return out


def _masks(folder):
    return {p.stem: load_mask(p) for p in sorted(folder.glob("*.png"))}


def test_walk_presets_and_overrides():
    assert walk_params(WalkConfig(preset="wood")).seed_power == 1.5
    p = walk_params(WalkConfig(preset="wood", exp_times=3))
    assert (p.exp_times, p.bg_threshold, p.beta) == (3, 0.22, 10.0)


def test_two_shards_equal_one_resume_and_retrained_irn(tiny_voc, trained, tmp_path):
    one = copy_run(trained, tmp_path / "one", tiny_voc)
    whole = _masks(masks_stage(one, progress=False))
    assert len(whole) == 24  # train_aug (holds the seed split train)
    assert set(np.unique(np.concatenate([m.ravel() for m in whole.values()])).tolist()) <= {0, 1, 2, 3}

    two = copy_run(trained, tmp_path / "two", tiny_voc)
    masks_stage(two, progress=False, shard=Shard(0, 2))
    assert 0 < len(_masks(two.out_dir / "masks")) < 24
    masks_stage(two, progress=False, shard=Shard(1, 2))
    sharded = _masks(two.out_dir / "masks")
    assert sharded.keys() == whole.keys() and all(np.array_equal(sharded[k], whole[k]) for k in whole)

    folder = one.out_dir / "masks"
    gone = sorted(folder.glob("*.png"))[:2]
    kept = sorted(folder.glob("*.png"))[-1]
    stamp = kept.stat().st_mtime_ns
    for p in gone:
        p.unlink()
    masks_stage(one, progress=False)
    assert kept.stat().st_mtime_ns == stamp and all(np.array_equal(load_mask(p), whole[p.stem]) for p in gone)

    ckpt = one.out_dir / "irn" / "last.pt"  # another IRN (same format, other weights): every mask is remade
    state = load_checkpoint(ckpt)
    state["model"] = {k: v * 0.5 if k.startswith("edge_out") else v for k, v in state["model"].items()}
    save_checkpoint(ckpt, state)
    masks_stage(one, progress=False)
    assert kept.stat().st_mtime_ns != stamp


def test_worker_processes_give_the_same_masks(tiny_voc, trained, tmp_path):
    """IRN runs in this process and the walk in 2 workers (spawned: forked ones hung after torch had run)."""
    one = _masks(masks_stage(copy_run(trained, tmp_path / "one", tiny_voc), progress=False))
    two = _masks(masks_stage(copy_run(trained, tmp_path / "two", tiny_voc, **{"runtime.refine_processes": 2}),
                             progress=False))
    assert two.keys() == one.keys() and all(np.array_equal(two[k], one[k]) for k in one)


def test_refuses_other_classes_and_sizes(tiny_voc, trained, tmp_path):
    cfg = copy_run(trained, tmp_path / "run", tiny_voc)
    ckpt = cfg.out_dir / "irn" / "last.pt"
    state = load_checkpoint(ckpt)
    save_checkpoint(ckpt, {**state, "class_names": ["cat", "dog", "cow"]})
    with pytest.raises(DataError, match="IRN was trained for classes"):
        masks_stage(cfg, progress=False)
    save_checkpoint(ckpt, state)

    seed_path = sorted((cfg.out_dir / "seeds").glob("*.npz"))[0]
    seed = load_seed(seed_path)
    seed.size = (40, 48)
    save_seed(seed_path, seed)
    with pytest.raises(DataError, match="seed was made for a 40x48 image"):
        masks_stage(cfg, progress=False)
