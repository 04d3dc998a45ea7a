"""woodseg pretrain: bit-identical reruns, exact resume, refusal of foreign checkpoints, loadable output."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from woodseg.data.benchmark.corpus import CorpusSpec, ensure_corpus
from woodseg.errors import ConfigError, DataError
from woodseg.fsutil import sha256_file
from woodseg.models.backbone import build_resnet
from woodseg.train import pretrain as pt

SETTINGS = pt.PretrainSettings(epochs=2, batch_size=8, threads=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return ensure_corpus(CorpusSpec.tiny(n_train=8, n_val=2), tmp_path_factory.mktemp("corpus"))


def test_reruns_are_bit_identical_and_load_as_backbone_weights(corpus: Path, tmp_path: Path) -> None:
    a = pt.pretrain(corpus, tmp_path / "a", SETTINGS, progress=False)
    b = pt.pretrain(corpus, tmp_path / "b", SETTINGS, progress=False)
    assert sha256_file(a) == sha256_file(b)
    record = json.loads(a.with_suffix(".json").read_text())
    assert record["sha256"] == sha256_file(a)
    assert record["settings"] == SETTINGS.to_dict() and record["corpus"]["categories"] == 4
    assert 0.0 <= record["val_top1"] <= 100.0 and len(record["history"]) == 2
    net = build_resnet("resnet10", str(a))
    state = torch.load(a, weights_only=True)
    assert "fc.weight" not in state and state["conv1.weight"].dtype == torch.float16
    assert torch.equal(net.conv1.weight.detach(), state["conv1.weight"].float())


def test_an_interrupted_run_resumes_to_the_same_weights(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    whole = pt.pretrain(corpus, tmp_path / "whole", SETTINGS, progress=False)
    calls = {"n": 0}
    real = pt.augment_batch

    def crash_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # 4 steps per epoch: the epoch-1 checkpoint exists, epoch 2 is half done
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pt, "augment_batch", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        pt.pretrain(corpus, tmp_path / "resumed", SETTINGS, progress=False)
    monkeypatch.setattr(pt, "augment_batch", real)
    assert not (tmp_path / "resumed" / "weights.pth").exists()
    resumed = pt.pretrain(corpus, tmp_path / "resumed", SETTINGS, progress=False)
    assert sha256_file(resumed) == sha256_file(whole)


def test_a_checkpoint_of_other_settings_is_refused(corpus: Path, tmp_path: Path) -> None:
    pt.pretrain(corpus, tmp_path, SETTINGS, progress=False)
    with pytest.raises(ConfigError, match="other settings"):
        pt.pretrain(corpus, tmp_path, replace(SETTINGS, lr=0.01), progress=False)
    pt.pretrain(corpus, tmp_path, replace(SETTINGS, lr=0.01), restart=True, progress=False)


def test_bad_corpora_name_the_folder_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no 'train' folder"):
        pt.read_corpus(tmp_path, "train")
    for name, size in (("a", 32), ("b", 40)):
        (tmp_path / "train" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(tmp_path / "train" / name / "x.png")
    with pytest.raises(DataError, match="differ in size"):
        pt.read_corpus(tmp_path, "train")
