"""Issue 14: OoD candidates are scored the way the classifier saw images (one setting, recorded, warned)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from ood_helpers import CLASSES, make_images
from typer.testing import CliRunner

from woodseg.cli import app
from woodseg.config import ModelConfig
from woodseg.data.ood_list import ood_from_folder
from woodseg.errors import ConfigError, DataError
from woodseg.models.cam_net import build_cam_net, classifier_checkpoint, load_classifier
from woodseg.ood.pool import write_pool
from woodseg.ood.rank import Shard, merge_parts, rank_shard
from woodseg.ood.resolution import check_resolution, ood_input_record, resolve_long_side, scoring_long_side
from woodseg.ood.scoring import score_pool_full

runner = CliRunner()


def _small_classifier(path: Path) -> Path:
    """A classifier 'trained' at long sides 40-56 px, with the record training writes."""
    torch.manual_seed(0)
    net = build_cam_net(ModelConfig(backbone="resnet10", weights=None, freeze_bn=False, frozen_stages=0), len(CLASSES))
    torch.save(classifier_checkpoint(net, CLASSES, {"ood_input": ood_input_record(None, (40, 56))}), path)
    return path


@pytest.fixture()
def small_pool(tmp_path: Path) -> Path:
    folder = tmp_path / "small"
    names = make_images(folder, 8, seed=3, sizes=(30, 44))
    return write_pool(tmp_path / "pool.txt", names, root=folder, source="test")


def test_setting_resolves_to_the_training_resolution_native_or_a_size():
    assert resolve_long_side(None, (40, 56)) == 48 and resolve_long_side("native", (40, 56)) is None
    assert resolve_long_side(500, (40, 56)) == 500
    assert scoring_long_side(None, {"ood_input": {"long_side": 48, "train_resize_long": [40, 56]}}, (320, 640)) == \
        (48, [40, 56])  # the checkpoint's record wins over the config's defaults
    assert scoring_long_side(96, {"ood_input": {"long_side": 48}}, (40, 56))[0] == 96  # an explicit setting wins
    assert scoring_long_side(None, {}, (320, 640)) == (480, [320, 640])  # no record: the config's range


def test_small_classifier_ranks_small_pool_at_its_own_resolution_by_default(tmp_path, small_pool):
    ckpt = _small_classifier(tmp_path / "last.pt")
    res = runner.invoke(app, ["ood", "rank", "--checkpoint", str(ckpt), "--pool", str(small_pool),
                              "--out", str(tmp_path / "ranked"), "--threshold", "0.3", "runtime.device=cpu"])
    assert res.exit_code == 0, res.output
    assert "long side 48 px" in res.output
    ranked = json.loads((tmp_path / "ranked" / "ranked.json").read_text())
    assert ranked["long_side"] == 48 and ranked["train_resize_long"] == [40, 56]
    model, names = load_classifier(ckpt)
    ref = score_pool_full(model, ood_from_folder(tmp_path / "small"), names, long_side=48)
    with np.load(tmp_path / "ranked" / "scores.npz") as z:
        np.testing.assert_allclose(z["scores"], ref.scores, atol=1e-5)


def test_scoring_5x_away_warns_naming_both_and_strict_refuses(tmp_path, small_pool, caplog):
    ckpt = _small_classifier(tmp_path / "last.pt")
    with caplog.at_level(logging.WARNING, logger="woodseg.ood.resolution"):
        check_resolution(240, (40, 56))
    assert "240 px" in caplog.text and "40-56 px" in caplog.text
    caplog.clear()
    check_resolution(80, (40, 56))  # within 2x: quiet
    assert not caplog.text
    with pytest.raises(ConfigError, match="240 px.*40-56 px"):
        check_resolution(240, (40, 56), strict=True)
    args = ["ood", "rank", "--checkpoint", str(ckpt), "--pool", str(small_pool), "--out", str(tmp_path / "r"),
            "runtime.device=cpu", "wood.ood_long_side=240"]
    strict = runner.invoke(app, [*args, "--strict"])
    assert isinstance(strict.exception, ConfigError)  # `woodseg` prints it as error/fix and exits 2
    assert "240 px" in str(strict.exception) and "40-56" in str(strict.exception)
    assert not (tmp_path / "r" / "parts").exists()


def test_merge_refuses_parts_scored_at_different_resolutions(tmp_path, small_pool):
    ckpt = _small_classifier(tmp_path / "last.pt")
    kw = dict(device="cpu", progress=False, threshold=0.3, batch_size=4)
    rank_shard(ckpt, small_pool, tmp_path / "r", shard=Shard(0, 2), long_side=48, **kw)
    rank_shard(ckpt, small_pool, tmp_path / "r", shard=Shard(1, 2), long_side=32, **kw)
    with pytest.raises(DataError, match="long_side: 48 vs 32"):
        merge_parts(tmp_path / "r")


def test_resume_with_another_batch_size_is_refused(tmp_path, small_pool):
    ckpt = _small_classifier(tmp_path / "last.pt")
    kw = dict(device="cpu", progress=False, threshold=0.3, long_side=48)
    rank_shard(ckpt, small_pool, tmp_path / "r", shard=Shard(0, 2), batch_size=4, **kw)
    with pytest.raises(DataError, match="batch_size"):
        rank_shard(ckpt, small_pool, tmp_path / "r", shard=Shard(0, 2), batch_size=2, **kw)
