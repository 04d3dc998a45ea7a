"""The shipped corpus-resnet10 weights: checksum, recipe and corpus as the code defines them, checked loading."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from woodseg.data.benchmark.corpus import CORPUS_VERSION, CorpusSpec
from woodseg.errors import ConfigError
from woodseg.fsutil import sha256_file
from woodseg.models import shipped
from woodseg.models.backbone import build_resnet
from woodseg.train.pretrain import PretrainSettings

NAME = "corpus-resnet10"


def test_the_shipped_file_matches_its_record() -> None:
    record = shipped.shipped_record(NAME)
    path = shipped.WEIGHTS_DIR / f"{NAME}.pth"
    assert sha256_file(path) == record["sha256"]
    assert path.stat().st_size < 50 * 2**20


def test_the_record_names_todays_recipe_and_corpus() -> None:
    """Changing the pretraining defaults or the corpus without rebuilding the shipped weights fails here."""
    record = shipped.shipped_record(NAME)
    assert record["settings"] == PretrainSettings().to_dict()
    assert record["corpus"]["embedded"] is True
    assert record["corpus"]["version"] == CORPUS_VERSION
    assert record["corpus"]["spec"] == CorpusSpec().to_dict()


def test_the_weights_load_by_name_into_resnet10_only() -> None:
    net = build_resnet("resnet10", NAME)
    state = torch.load(shipped.WEIGHTS_DIR / f"{NAME}.pth", weights_only=True)
    assert torch.equal(net.layer4[0].conv2.weight.detach(), state["layer4.0.conv2.weight"].float())
    with pytest.raises(ConfigError, match="resnet10"):
        build_resnet("resnet18", NAME)


def test_a_changed_file_is_refused(tmp_path, monkeypatch) -> None:
    for suffix in (".pth", ".json"):
        shutil.copy(shipped.WEIGHTS_DIR / f"{NAME}{suffix}", tmp_path / f"{NAME}{suffix}")
    data = bytearray((tmp_path / f"{NAME}.pth").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / f"{NAME}.pth").write_bytes(bytes(data))
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ConfigError, match="sha256"):
        build_resnet("resnet10", NAME)


@pytest.mark.skipif(os.environ.get("WOODSEG_VERIFY_WEIGHTS") != "1",
                    reason="rebuilds the shipped weights (~15 min on 2 cores); set WOODSEG_VERIFY_WEIGHTS=1 "
                           "(make verify-weights)")
def test_woodseg_pretrain_reproduces_the_shipped_file(tmp_path) -> None:
    cmd = [sys.executable, "-m", "woodseg", "pretrain", "--verify-shipped", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reproduced" in done.stdout
