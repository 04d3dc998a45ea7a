"""The ``irn`` stage: trains on IR labels from the classifier's backbone, resumes after a kill, skips when
trained, retrains when the IR labels change, refuses other settings and other classes."""

from __future__ import annotations

import pytest
import torch

from refine_helpers import copy_run, seeded_run
from woodseg.errors import DataError, TrainingError
from woodseg.fsutil import read_jsonl
from woodseg.models.cam_net import load_classifier
from woodseg.models.checkpoint import load_checkpoint
from woodseg.refine import irn_stage as irn_stage_module
from woodseg.refine.ir_stage import ir_labels_stage
from woodseg.refine.irn_stage import irn_stage, load_irn


@pytest.fixture(scope="module")
def labelled(tiny_voc, tmp_path_factory):
    out = tmp_path_factory.mktemp("irn") / "run"
    ir_labels_stage(seeded_run(tiny_voc, out), progress=False)
    return out


def test_trains_resumes_and_skips(tiny_voc, labelled, tmp_path, monkeypatch):
    cfg = copy_run(labelled, tmp_path / "run", tiny_voc)
    ckpt = irn_stage(cfg, progress=False)
    state = load_checkpoint(ckpt)
    assert state["finished"] and state["step"] == 6  # 24 images / batch 4, one epoch
    model, meta = load_irn(ckpt, ("disc", "bar", "ring"))
    classifier, _ = load_classifier(cfg.out_dir / "classifier" / "last.pt")
    # irn.weights=classifier: the frozen backbone is the classifier's
    assert torch.equal(model.backbone[0][0].weight, classifier.stages[0][0].weight)
    assert torch.equal(model.backbone[4][0].conv1.weight, classifier.stages[3][0].conv1.weight)
    assert len(read_jsonl(cfg.out_dir / "irn" / "metrics.jsonl")) == 6

    # a run killed in its 4th step resumes from the step-2 checkpoint and ends with the same weights
    killed = copy_run(labelled, tmp_path / "killed", tiny_voc)
    calls = {"n": 0}
    real = irn_stage_module.irn_step

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(irn_stage_module, "irn_step", dying)
    with pytest.raises(RuntimeError, match="killed"):
        irn_stage(killed, progress=False)
    assert load_checkpoint(killed.out_dir / "irn" / "last.pt")["step"] == 2
    monkeypatch.setattr(irn_stage_module, "irn_step", real)
    irn_stage(killed, progress=False)
    resumed = load_checkpoint(killed.out_dir / "irn" / "last.pt")
    assert resumed["finished"] and resumed["step"] == 6
    for k, v in state["model"].items():
        assert torch.allclose(resumed["model"][k], v, atol=1e-6), k
    steps = [r["step"] for r in read_jsonl(killed.out_dir / "irn" / "metrics.jsonl")]
    assert steps == sorted(set(steps))  # records after the checkpoint were dropped, then written once

    stamp = ckpt.stat().st_mtime_ns
    irn_stage(cfg, progress=False)
    assert ckpt.stat().st_mtime_ns == stamp  # trained from the same inputs: nothing redone


def test_changed_ir_labels_retrain_other_settings_are_refused(tiny_voc, labelled, tmp_path):
    cfg = copy_run(labelled, tmp_path / "run", tiny_voc)
    ckpt = irn_stage(cfg, progress=False)
    stamp = ckpt.stat().st_mtime_ns
    other = copy_run(labelled, tmp_path / "unused", tiny_voc, **{"irn.lr": 0.05})
    other = other.model_copy(update={"out_dir": cfg.out_dir})
    with pytest.raises(TrainingError, match="different config"):
        irn_stage(other, progress=False)

    redo = copy_run(labelled, tmp_path / "unused2", tiny_voc, **{"ir_labels.bg": 0.1})
    redo = redo.model_copy(update={"out_dir": cfg.out_dir})
    ir_labels_stage(redo, progress=False, restart=True)
    irn_stage(cfg, progress=False)
    assert ckpt.stat().st_mtime_ns != stamp

    with pytest.raises(DataError, match="IRN was trained for classes"):
        load_irn(ckpt, ("a", "b", "c"))


def test_ir_labels_of_another_size_or_class_list_are_refused(tiny_voc, labelled, tmp_path):
    import json

    import numpy as np

    from woodseg.data.palette import save_palette_png

    cfg = copy_run(labelled, tmp_path / "run", tiny_voc)
    index = cfg.out_dir / "ir_labels" / "index.json"
    data = json.loads(index.read_text())
    index.write_text(json.dumps({**data, "classes": ["cat", "dog", "cow"]}))
    with pytest.raises(DataError, match="IR labels were made for classes"):
        irn_stage(cfg, progress=False)
    index.write_text(json.dumps(data))
    victim = sorted((cfg.out_dir / "ir_labels").glob("*.png"))[0]
    save_palette_png(victim, np.zeros((40, 48), np.uint8))
    with pytest.raises(DataError, match="IR label is 40x48, its image is 48x48"):
        irn_stage(cfg, progress=False)
