"""The one ordered stage list: --from/--to, and stale inputs: a replaced F_in retrains W-OoD and remakes its
seeds and evaluation, while an unchanged re-run skips everything."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from helpers import tiny_overrides
from woodseg.config import load_config
from woodseg.errors import ConfigError
from woodseg.pipeline.stages import run_stages, select, stage_names
from woodseg.runtime.paths import RunPaths


def test_stage_order_and_selection():
    assert stage_names()[:3] == ["train", "cam", "eval"]
    names = stage_names()  # refinement in pipeline order; eval_predictions last
    assert names[3:7] == ["ir_labels", "irn", "masks", "eval_masks"] and names[-1] == "eval_predictions"
    assert [s.name for s in select("cam", "eval")] == ["cam", "eval"]
    assert [s.name for s in select(None, "train")] == ["train"]
    with pytest.raises(ConfigError, match="no such stage"):
        select("crf", None)
    with pytest.raises(ConfigError, match="comes after"):
        select("eval", "cam")


def _stamps(run: RunPaths) -> dict[str, int]:
    files = [run.checkpoint, run.eval("seeds"), *sorted(run.seeds.glob("*.npz"))]
    return {str(p): p.stat().st_mtime_ns for p in files}


def test_replacing_f_in_retrains_wood_and_remakes_its_seeds_unchanged_rerun_skips(tiny_voc, tmp_path):
    f_in, other = tmp_path / "f_in", tmp_path / "other"
    run_stages(load_config(None, tiny_overrides(tiny_voc, f_in, **{"wood.variant": "none"})), stop="train",
               progress=False)
    run_stages(load_config(None, tiny_overrides(tiny_voc, other, **{"wood.variant": "none", "train.seed": 5})),
               stop="train", progress=False)
    ckpt = RunPaths(f_in).checkpoint
    wood = load_config(None, tiny_overrides(tiny_voc, tmp_path / "wood", **{"wood.variant": "paper",
                                                                            "train.init_from": ckpt}))
    run = RunPaths.of(wood)
    run_stages(wood, stop="eval", progress=False)
    before = _stamps(run)
    weights = torch.load(run.checkpoint, map_location="cpu", weights_only=True)["model"]

    run_stages(wood, stop="eval", progress=False)  # nothing changed: nothing is redone
    assert _stamps(run) == before

    shutil.copyfile(RunPaths(other).checkpoint, ckpt)  # F_in's file now holds another model
    run_stages(wood, stop="eval", progress=False)
    after = _stamps(run)
    assert all(after[k] != before[k] for k in before), "W-OoD, its seeds and its evaluation must be redone"
    again = torch.load(run.checkpoint, map_location="cpu", weights_only=True)["model"]
    assert any(not torch.equal(weights[k], again[k]) for k in weights)
    record = torch.load(run.checkpoint, map_location="cpu", weights_only=True)["inputs"]["init_from"]
    assert record["path"] == str(ckpt)

    run_stages(wood, stop="eval", progress=False)
    assert _stamps(run) == after


def test_ood_input_resolution_is_recorded_in_the_checkpoint(tiny_voc, tmp_path):
    cfg = load_config(None, tiny_overrides(tiny_voc, tmp_path / "r", **{"wood.variant": "none"}))
    path = run_stages(cfg, stop="train", progress=False)["train"]
    meta = torch.load(Path(path), map_location="cpu", weights_only=True)["ood_input"]
    assert meta == {"long_side": 48, "train_resize_long": [40, 56]}  # null: the middle of train.resize_long
