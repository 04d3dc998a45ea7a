"""The segmenter and predict stages on tiny data: training on masks, resume, skip/retrain, shards, CRF."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import CLASSES, make_tiny_voc, tiny_overrides, torchrun_path
from woodseg.config import load_config
from woodseg.data.build import load_dataset
from woodseg.data.images import load_mask
from woodseg.data.palette import save_palette_png
from woodseg.errors import CheckpointError, ConfigError, DataError, TrainingError
from woodseg.evaluate.metrics import confusion, scores
from woodseg.models.checkpoint import load_checkpoint, save_checkpoint
from woodseg.runtime.paths import RunPaths
from woodseg.runtime.shard import Shard
from woodseg.segment.stages import load_segmenter, predict_stage, segmenter_stage

# Random init: BatchNorm learns its statistics; single-scale (no MSC) keeps it fast. 96 px images: at output
# stride 8 the 48 px images of the shared fixture leave 6x6 logits, too coarse for their small shapes.
SEG = {"segmenter.labels": "gt", "segmenter.split": "train_aug", "segmenter.backbone": "resnet10",
       "segmenter.msc_scales": "[]", "segmenter.freeze_bn": False, "segmenter.batch_size": 4,
       "segmenter.iterations": 60, "segmenter.lr": 0.003, "segmenter.crop_size": 96,
       "segmenter.scales": "[0.75,1.0,1.25]", "segmenter.channels_last": False, "segmenter.checkpoint_every": 20, "segmenter.log_every": 1,
       "predict.scales": "[1.0]", "predict.flip": False, "predict.crf": False, "predict.batch_size": 2}


def _cfg(root: Path, out: Path, **extra: object):
    return load_config(None, tiny_overrides(root, out, **{**SEG, **extra}))


@pytest.fixture(scope="module")
def tiny_voc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 training images (train_aug), 4 of them in train, 4 in val, 96 x 96."""
    return make_tiny_voc(tmp_path_factory.mktemp("voc96"), n_train=8, n_val=4, n_ood=1, size=96)


@pytest.fixture(scope="module")
def trained(tiny_voc: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A segmenter trained on the ground truth of the tiny training split (the fully supervised reference)."""
    out = tmp_path_factory.mktemp("seg")
    segmenter_stage(_cfg(tiny_voc, out), progress=False)
    return out


def _miou(cfg, split: str, folder: Path) -> float:
    ds = load_dataset(cfg.data)
    conf = sum(confusion(load_mask(ds.mask_path(i)), load_mask(folder / f"{i}.png"), ds.num_classes + 1)
               for i in ds.ids(split))
    return scores(conf).miou


def test_segmenter_on_ground_truth_fits_the_training_images(tiny_voc, trained) -> None:
    cfg = _cfg(tiny_voc, trained, **{"predict.splits": "[train_aug]"})
    run = RunPaths.of(cfg)
    metrics = [json.loads(x) for x in (run.segmenter / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, 61))
    assert metrics[-1]["ce"] < metrics[0]["ce"] / 3
    record = json.loads((run.segmenter / "stage.json").read_text())
    assert record["inputs"]["labels"]["sha"] and record["stage"] == "segmenter"
    _, names, meta = load_segmenter(run.segmenter / "last.pt")
    assert names == CLASSES and meta["labels"] == "gt" and meta["finished"]
    (folder,) = predict_stage(cfg, progress=False)
    assert _miou(cfg, "train_aug", folder) > 0.75
    index = json.loads((folder / "index.json").read_text())
    assert index["split"] == "train_aug" and index["crf"] is None and index["inputs"]["segmenter"]


def test_resume_after_a_crash_equals_an_uninterrupted_run(tiny_voc, tmp_path, monkeypatch) -> None:
    import woodseg.segment.train as train_mod

    short = {"segmenter.iterations": 6, "segmenter.checkpoint_every": 2}
    whole = _cfg(tiny_voc, tmp_path / "whole", **short)
    segmenter_stage(whole, progress=False)

    real, calls = train_mod.deeplab_step, []

    def crash_at_5(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    cut = _cfg(tiny_voc, tmp_path / "cut", **short)
    monkeypatch.setattr(train_mod, "deeplab_step", crash_at_5)
    with pytest.raises(RuntimeError, match="simulated"):
        segmenter_stage(cut, progress=False)
    ckpt = RunPaths.of(cut).segmenter / "last.pt"
    assert load_checkpoint(ckpt)["step"] == 4
    monkeypatch.setattr(train_mod, "deeplab_step", real)
    segmenter_stage(cut, progress=False)
    a = load_checkpoint(RunPaths.of(whole).segmenter / "last.pt")
    b = load_checkpoint(ckpt)
    assert b["step"] == 6 and b["finished"]
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, rtol=1e-5, atol=1e-6)
    steps = [json.loads(x)["step"] for x in (ckpt.parent / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def _pseudo_masks(root: Path, out: Path, classes: list[str]) -> Path:
    """A masks/ folder as the masks stage leaves it: the ground truth of the training split, index.json."""
    folder = RunPaths(out).masks
    folder.mkdir(parents=True, exist_ok=True)
    for line in (root / "ImageSets/Segmentation/train_aug.txt").read_text().split():
        shutil.copyfile(root / "SegmentationClass" / f"{line}.png", folder / f"{line}.png")
    (folder / "index.json").write_text(json.dumps({"classes": classes, "inputs": {}}))
    return folder


def test_changed_masks_retrain_unchanged_skip_other_classes_refused(tiny_voc, tmp_path) -> None:
    cfg = _cfg(tiny_voc, tmp_path / "m", **{"segmenter.labels": "masks", "segmenter.iterations": 2})
    with pytest.raises(DataError, match="no pseudo masks"):
        segmenter_stage(cfg, progress=False)
    masks = _pseudo_masks(tiny_voc, tmp_path / "m", list(CLASSES))
    ckpt = segmenter_stage(cfg, progress=False)
    first = ckpt.stat().st_mtime_ns
    segmenter_stage(cfg, progress=False)
    assert ckpt.stat().st_mtime_ns == first, "an unchanged re-run must skip"

    one = sorted(masks.glob("*.png"))[0]
    lab = load_mask(one)
    lab[:8] = 255
    save_palette_png(one, lab)
    segmenter_stage(cfg, progress=False)
    assert ckpt.stat().st_mtime_ns != first, "a changed mask set must retrain"
    assert load_checkpoint(ckpt)["finished"]

    (masks / "index.json").write_text(json.dumps({"classes": ["disc", "bar", "cone"], "inputs": {}}))
    with pytest.raises(DataError, match="made for classes"):
        segmenter_stage(cfg, progress=False)
    (masks / "index.json").write_text(json.dumps({"classes": list(CLASSES), "inputs": {}}))
    lab[:4] = 7  # a label beyond the 3 classes: masks of another class list
    save_palette_png(one, lab)
    with pytest.raises(DataError, match="holds labels"):
        segmenter_stage(cfg, progress=False)

    other = _cfg(tiny_voc, tmp_path / "m", **{"segmenter.labels": "masks", "segmenter.iterations": 3})
    (masks / one.name).write_bytes((tiny_voc / "SegmentationClass" / one.name).read_bytes())
    with pytest.raises(TrainingError, match="different config"):
        segmenter_stage(other, progress=False)


def test_predict_two_shards_equal_one_and_crf_folder_written(tiny_voc, trained, tmp_path) -> None:
    pytest.importorskip("pydensecrf.densecrf")
    crf = {"predict.crf": True, "predict.splits": "[val]", "predict.scales": "[1.0,0.75]", "predict.flip": True}
    outs = {}
    for name, shards, procs in (("one", [Shard()], 1), ("two", [Shard(1, 2), Shard(0, 2)], 2)):
        out = tmp_path / name
        shutil.copytree(trained / "segmenter", out / "segmenter")
        cfg = _cfg(tiny_voc, out, **crf, **{"predict.crf_processes": procs})
        for sh in shards:
            folders = predict_stage(cfg, progress=False, shard=sh)
        assert [f.name for f in folders] == ["val", "val-crf"]
        outs[name] = folders
    ids = load_dataset(load_config(None, tiny_overrides(tiny_voc, tmp_path)).data).ids("val")
    for a, b in zip(outs["one"], outs["two"], strict=True):
        assert sorted(p.name for p in a.glob("*.png")) == sorted(f"{i}.png" for i in ids)
        for i in ids:
            assert (a / f"{i}.png").read_bytes() == (b / f"{i}.png").read_bytes()
    index = json.loads((outs["one"][1] / "index.json").read_text())
    assert index["crf"]["bi_sxy"] == 67.0 and index["split"] == "val"
    plain = [load_mask(outs["one"][0] / f"{i}.png") for i in ids]
    refined = [load_mask(outs["one"][1] / f"{i}.png") for i in ids]
    assert any((p != r).any() for p, r in zip(plain, refined, strict=True)), "the CRF must change some pixels"

    # a re-run finds everything done; a deleted plain map is remade
    first = outs["one"][0] / f"{ids[0]}.png"
    before = first.read_bytes()
    first.unlink()
    predict_stage(_cfg(tiny_voc, tmp_path / "one", **crf), progress=False)
    assert first.read_bytes() == before

    # --restart on shard 0 of 2 remakes its own files only
    two = _cfg(tiny_voc, tmp_path / "two", **crf)
    stamps = {p: p.stat().st_mtime_ns for f in outs["two"] for p in f.glob("*.png")}
    predict_stage(two, progress=False, shard=Shard(0, 2), restart=True)
    redone = sorted((p.parent.name, p.stem) for p in stamps if p.stat().st_mtime_ns != stamps[p])
    # 4 equally sized images in batches of 2: shard 0 holds the first batch, in both folders
    assert redone == sorted((f, i) for f in ("val", "val-crf") for i in ids[:2])

    # another segmenter (its content changed) remakes every prediction
    ckpt = tmp_path / "two" / "segmenter" / "last.pt"
    state = load_checkpoint(ckpt)
    state["model"] = {k: v + 0.01 if k.endswith("aspp.convs.0.bias") else v for k, v in state["model"].items()}
    save_checkpoint(ckpt, state)
    stamps = {p: p.stat().st_mtime_ns for f in outs["two"] for p in f.glob("*.png")}
    for sh in (Shard(0, 2), Shard(1, 2)):
        predict_stage(two, progress=False, shard=sh)
    assert all(p.stat().st_mtime_ns != t for p, t in stamps.items())


def test_predict_refuses_other_classes_and_unfinished_training(tiny_voc, trained, tmp_path) -> None:
    state = load_checkpoint(trained / "segmenter" / "last.pt")
    wrong = tmp_path / "wrong" / "segmenter" / "last.pt"
    save_checkpoint(wrong, {**state, "classes": ["disc", "bar", "cone"]})
    with pytest.raises(ConfigError, match="trained on classes"):
        predict_stage(_cfg(tiny_voc, tmp_path / "wrong"), progress=False)
    unfinished = tmp_path / "half" / "segmenter" / "last.pt"
    save_checkpoint(unfinished, {**state, "finished": False, "step": 3})
    with pytest.raises(CheckpointError, match="stopped at step 3"):
        predict_stage(_cfg(tiny_voc, tmp_path / "half"), progress=False)
    assert not np.any([p.exists() for p in (tmp_path / "wrong" / "predictions").glob("*/*.png")])


@pytest.mark.slow
def test_torchrun_two_processes_train_and_predict(tiny_voc, tmp_path) -> None:
    """`woodseg run --from segmenter --to predict` as a 2-process DDP job (Gloo): one global batch, rank 0
    logs, each rank predicts its shard."""
    import os
    import subprocess
    import sys

    torchrun = torchrun_path()
    out = tmp_path / "ddp"
    # frozen BatchNorm: batch statistics would couple each rank's images; a small lr keeps the random backbone finite
    ddp_seg = {**SEG, "segmenter.iterations": 4, "segmenter.freeze_bn": True, "segmenter.lr": 1e-4,
               "predict.crf": False, "runtime.device": "cpu"}
    over = tiny_overrides(tiny_voc, out, **ddp_seg)
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "woodseg", "run", "-q", "--from", "segmenter",
           "--to", "predict", *over]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stderr.count("global batch 4 = 2 process(es) x 2") == 1
    state = load_checkpoint(out / "segmenter" / "last.pt")
    assert state["finished"] and state["step"] == 4
    steps = [json.loads(x)["step"] for x in (out / "segmenter" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    val = (tiny_voc / "ImageSets/Segmentation/val.txt").read_text().split()
    assert sorted(p.stem for p in (out / "predictions" / "val").glob("*.png")) == sorted(val)
    assert len(list((out / "predictions" / "val" / "shards").glob("*.json"))) == 2
    # one process on the same global batch trains the same DeepLab
    one = tmp_path / "one"
    proc = subprocess.run([sys.executable, "-m", "woodseg", "segmenter", "-q", *tiny_overrides(tiny_voc, one, **ddp_seg)],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    single = load_checkpoint(one / "segmenter" / "last.pt")
    for key, value in single["model"].items():
        if value.is_floating_point():
            torch.testing.assert_close(state["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_stages_follow_the_seeds_in_pipeline_order() -> None:
    from woodseg.pipeline.stages import select, stage_names

    names = stage_names()
    assert names.index("eval") < names.index("segmenter") == names.index("predict") - 1
    assert [s.name for s in select("segmenter", "predict")] == ["segmenter", "predict"]
