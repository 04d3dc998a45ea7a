"""Checkpoints load weights-only: pickled code is refused and never runs; broken files are named; official
IRN/AdvCAM/W-OoD classifier files load with the same logits as woodseg's own weights."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import run_main, tiny_overrides
from woodseg.config import ModelConfig
from woodseg.data.dataset import VOC_CLASSES
from woodseg.errors import CheckpointError
from woodseg.models.cam_net import build_cam_net, classifier_checkpoint, load_classifier
from woodseg.models.checkpoint import load_checkpoint, plain, save_checkpoint


class _Payload:
    """Unpickling this calls os.system: the classic malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _malicious(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    marker = tmp_path / f"PWNED-{kind}"
    path = tmp_path / f"res50_cam_{kind}.pth"
    payload = {"classifier.weight": torch.zeros(20, 2048, 1, 1), "x": _Payload(marker)}
    if kind == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2 if kind == "pickle2" else 4))
    return path, marker


def _tiny_net(outputs: int = 3):
    torch.manual_seed(0)
    return build_cam_net(ModelConfig(backbone="resnet10", weights=None, freeze_bn=False, frozen_stages=0,
                                     channels_last=False), outputs).eval()


def _run_cli(monkeypatch, capsys, *args: object) -> tuple[int, str]:
    code, _, err = run_main(monkeypatch, capsys, *args)
    return code, err


# ---- refusing code -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["torch", "pickle2", "pickle4"])
def test_pickled_payload_is_refused_and_runs_nothing(tmp_path, kind):
    path, marker = _malicious(tmp_path, kind)
    for load in (load_checkpoint, load_classifier):
        with pytest.raises(CheckpointError, match="refused") as exc:
            load(path)
        assert str(path) in str(exc.value) and exc.value.path == path
    assert not marker.exists()
    if kind == "torch":
        assert "posix.system" in str(exc.value)


def test_pickled_payload_through_every_cli_entry_runs_nothing(tiny_voc, tmp_path, monkeypatch, capsys):
    path, marker = _malicious(tmp_path, "torch")
    ovr = tiny_overrides(tiny_voc, tmp_path / "out", **{"wood.variant": "none"})
    code, err = _run_cli(monkeypatch, capsys, "cam", "-q", "--checkpoint", path, *ovr)
    assert code == 2 and "refused" in err and str(path) in err and "Traceback" not in err
    ovr = tiny_overrides(tiny_voc, tmp_path / "out2", **{"wood.variant": "none", "train.init_from": path})
    code, err = _run_cli(monkeypatch, capsys, "train", "-q", *ovr)
    assert code == 2 and "refused" in err and str(path) in err
    (tmp_path / "out3" / "classifier").mkdir(parents=True)
    (tmp_path / "out3" / "classifier" / "last.pt").write_bytes(path.read_bytes())  # a planted resume file
    code, err = _run_cli(monkeypatch, capsys, "train", "-q", *tiny_overrides(tiny_voc, tmp_path / "out3",
                                                                             **{"wood.variant": "none"}))
    assert code == 2 and "refused" in err and "last.pt" in err
    assert not marker.exists()


# ---- broken files ------------------------------------------------------------------------------------------


def test_empty_truncated_and_folder_checkpoints_are_named(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, classifier_checkpoint(_tiny_net(), ("a", "b", "c"), {}))
    data = good.read_bytes()
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "tail.pt").write_bytes(data[:-20])
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(100)}, legacy, _use_new_zipfile_serialization=False)
    (tmp_path / "legacy_half.pth").write_bytes(legacy.read_bytes()[:300])
    (tmp_path / "text.pt").write_text("not a checkpoint at all")
    (tmp_path / "dir.pt").mkdir()
    cases = {"empty.pt": "empty", "half.pt": "truncated, corrupt", "tail.pt": "truncated, corrupt",
             "legacy_half.pth": "truncated, corrupt", "text.pt": "truncated, corrupt", "dir.pt": "is a folder",
             "missing.pt": "does not exist"}
    for name, what in cases.items():
        with pytest.raises(CheckpointError, match=what) as exc:
            load_checkpoint(tmp_path / name)
        assert str(tmp_path / name) in str(exc.value) and exc.value.fix, name
    assert load_checkpoint(legacy)["w"].shape == (100,)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip"])
def test_broken_checkpoint_via_cli_exits_2_naming_it(tiny_voc, tmp_path, monkeypatch, capsys, content):
    bad = tmp_path / "classifier.pt"
    bad.write_bytes(content)
    code, err = _run_cli(monkeypatch, capsys, "cam", "-q", "--checkpoint", bad,
                         *tiny_overrides(tiny_voc, tmp_path / "out", **{"wood.variant": "none"}))
    assert code == 2 and str(bad) in err and "Traceback" not in err and "Aborted" not in err
    assert "fix:" in err


def test_last_pt_that_is_a_folder_is_named(tiny_voc, tmp_path, monkeypatch, capsys):
    (tmp_path / "out" / "classifier" / "last.pt").mkdir(parents=True)
    code, err = _run_cli(monkeypatch, capsys, "train", "-q",
                         *tiny_overrides(tiny_voc, tmp_path / "out", **{"wood.variant": "none"}))
    assert code == 2 and "last.pt is a folder" in err


# ---- what is saved -----------------------------------------------------------------------------------------


def test_save_makes_metadata_plain_so_weights_only_load_works(tmp_path):
    state = {"model": {"w": torch.ones(2)}, "path": Path("/data/voc"), "np_int": np.int64(3),
             "np_float": np.float32(0.5), "array": np.arange(4), "cfg": ModelConfig(weights=None),
             "tuple": (1, Path("x")), "set": {"b", "a"}}
    save_checkpoint(tmp_path / "c.pt", state)
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["path"] == "/data/voc" and back["np_int"] == 3 and type(back["np_int"]) is int
    assert back["np_float"] == 0.5 and torch.equal(back["array"], torch.arange(4))
    assert back["cfg"]["backbone"] == "resnet50" and back["tuple"] == (1, "x") and back["set"] == ["a", "b"]
    with pytest.raises(TypeError, match=r"checkpoint\['obj'\] holds a object"):
        plain({"obj": object()})


def test_checkpoints_are_saved_durably(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    save_checkpoint(tmp_path / "last.pt", {"w": torch.ones(1)})
    assert len(synced) == 2  # the file before the rename, the folder after


def test_checkpoints_written_by_the_current_format_keep_loading(tmp_path):
    """Files written before this module (plain ``torch.save`` of ``classifier_checkpoint``) still load."""
    net = _tiny_net()
    torch.save(classifier_checkpoint(net, ("a", "b", "c"), {"step": 3, "run_fingerprint": "f"}), tmp_path / "old.pt")
    loaded, names = load_classifier(tmp_path / "old.pt")
    x = torch.rand(2, 3, 48, 48)
    assert names == ("a", "b", "c")
    torch.testing.assert_close(loaded.eval()(x)[0], net(x)[0])


# ---- official IRN / AdvCAM / W-OoD files -------------------------------------------------------------------


def _irn_state_dict(net) -> dict[str, torch.Tensor]:
    """IRN ``net/resnet50_cam.py`` ``Net`` keys, written out by hand from our model's weights.

    IRN: stage1 = Sequential(conv1, bn1, relu, maxpool, layer1); stageN = Sequential(layerN) for N = 2..4;
    the same tensors also appear under ``resnet50.<torchvision name>``; classifier.weight [20, 2048, 1, 1].
    """
    ours = net.state_dict()
    stem = {"0": "conv1", "1": "bn1", "4": "layer1"}
    out = {}
    for key, value in ours.items():
        if key.startswith("classifier."):
            out[key] = value.clone()
            continue
        _, stage, rest = key.split(".", 2)
        if stage == "0":
            child, tail = rest.split(".", 1)
            out[f"stage1.{child}.{tail}"] = value.clone()
            out[f"resnet50.{stem[child]}.{tail}"] = value.clone()
        else:
            n = int(stage) + 1
            out[f"stage{n}.0.{rest}"] = value.clone()
            out[f"resnet50.layer{n}.{rest}"] = value.clone()
    return out


def test_official_irn_layout_loads_with_the_same_logits(tmp_path):
    torch.manual_seed(0)
    net = build_cam_net(ModelConfig(backbone="resnet50", weights=None), 20).eval()
    with torch.no_grad():  # non-trivial BN statistics, so a misplaced BN tensor changes the logits
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    state = _irn_state_dict(net)
    assert "stage2.0.0.conv1.weight" in state and "stage1.4.0.conv1.weight" in state
    assert state["classifier.weight"].shape == (20, 2048, 1, 1)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref, _ = net(x)
    for name, sd in (("irn.pth", state), ("dp.pth", {f"module.{k}": v for k, v in state.items()})):
        torch.save(sd, tmp_path / name)
        loaded, names = load_classifier(tmp_path / name)
        assert names == VOC_CLASSES
        with torch.no_grad():
            logits, _ = loaded.eval()(x)
        torch.testing.assert_close(logits, ref, msg=name)


def test_irn_layout_with_wrong_shapes_is_refused(tmp_path):
    torch.save({"stage1.0.weight": torch.zeros(64, 3, 7, 7), "classifier.weight": torch.zeros(20, 2048, 1, 1)},
               tmp_path / "partial.pth")
    with pytest.raises(Exception, match="does not match IRN") as exc:
        load_classifier(tmp_path / "partial.pth")
    assert str(tmp_path / "partial.pth") in str(exc.value)
