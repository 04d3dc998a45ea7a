"""The training engine: exact resume after a crash or Ctrl+C (checkpoint on SIGINT/SIGTERM, time-based
checkpoints), the non-finite-loss guard, refusing another run's checkpoint, the data order as a function of
the step, the LR schedule, and centres."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import run_main, tiny_overrides
from woodseg.config import load_config
from woodseg.errors import ConfigError, DataError, OutputError, TrainingError
from woodseg.fsutil import read_jsonl
from woodseg.models.cam_net import load_classifier
from woodseg.models.checkpoint import load_checkpoint
from woodseg.train.classifier import train_classifier
from woodseg.train.engine import poly_lr
from woodseg.train.sampler import StepBatchSampler
from woodseg.wood import objective
from woodseg.wood.centres import Centres, class_means, kmeans_centres, predicted_class_centres


def _cfg(root: Path, out: Path, **extra):
    return load_config(None, tiny_overrides(root, out, **{"train.epochs": 2, **extra}))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_classifier(path)[0].state_dict()


def test_resume_after_crash_reproduces_uninterrupted_run(tiny_voc, tmp_path, monkeypatch):
    ref = train_classifier(_cfg(tiny_voc, tmp_path / "ref", **{"wood.variant": "none"}), progress=False)

    real = objective.wood_objective
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # steps 0..2 done, checkpoint at step 2 written
            raise KeyboardInterrupt("simulated crash")
        return real(*args, **kwargs)

    cfg = _cfg(tiny_voc, tmp_path / "crash", **{"wood.variant": "none"})
    monkeypatch.setattr(objective, "wood_objective", crashing)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(cfg, progress=False)
    state = load_checkpoint(tmp_path / "crash/classifier/last.pt")
    assert state["step"] == 2 and not state["finished"]
    monkeypatch.setattr(objective, "wood_objective", real)
    resumed = train_classifier(cfg, progress=False)
    a, b = _weights(ref), _weights(resumed)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    steps = [r["step"] for r in read_jsonl(tmp_path / "crash/classifier/metrics.jsonl")]
    assert steps == list(range(1, 7))  # 2 epochs x 3 steps, no duplicate after the resume


def _assert_same_weights(a_path: Path, b_path: Path) -> None:
    a, b = _weights(a_path), _weights(b_path)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


_SLOW_TRAIN = """
import sys, time
from woodseg.wood import objective
real = objective.wood_objective
def slow(*args, **kwargs):  # slow steps, so that the signal lands mid-training
    time.sleep(0.25)
    return real(*args, **kwargs)
objective.wood_objective = slow
from woodseg.cli import main
sys.argv = ["woodseg", *sys.argv[1:]]
main()
"""


def test_ctrl_c_saves_a_checkpoint_exits_130_and_resumes_exactly(tiny_voc, tmp_path):
    import woodseg

    over = {"wood.variant": "none", "train.epochs": 4, "train.checkpoint_every": 1000,
            "train.checkpoint_minutes": "null"}
    cfg = _cfg(tiny_voc, tmp_path / "int", **over)
    metrics = tmp_path / "int/classifier/metrics.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(woodseg.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_TRAIN, "train", "-q",
                             *tiny_overrides(tiny_voc, tmp_path / "int", **{"train.epochs": 2, **over})],
                            env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (metrics.exists() and len(read_jsonl(metrics)) >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=300)[1]
    assert proc.returncode == 130, err
    assert "SIGINT" in err and "resume" in err
    state = load_checkpoint(tmp_path / "int/classifier/last.pt")
    done = [r["step"] for r in read_jsonl(metrics)]
    assert 2 <= state["step"] < 12 and not state["finished"]
    assert state["step"] == done[-1]  # nothing trained before the signal was lost
    resumed = train_classifier(cfg, progress=False)
    ref = train_classifier(_cfg(tiny_voc, tmp_path / "ref", **over), progress=False)
    _assert_same_weights(ref, resumed)
    assert [r["step"] for r in read_jsonl(metrics)] == list(range(1, 13))


def _signal_at_call(monkeypatch, n: int, *signums: int) -> None:
    """Send ``signums`` to this process during the n-th step."""
    real = objective.wood_objective
    calls = {"n": 0}

    def signalling(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            for signum in signums:
                os.kill(os.getpid(), signum)
                time.sleep(0.05)  # let the handler run before the next signal
        return real(*args, **kwargs)

    monkeypatch.setattr(objective, "wood_objective", signalling)


def test_sigterm_saves_after_the_step_and_exits_143(tiny_voc, tmp_path, monkeypatch):
    over = {"wood.variant": "none", "train.checkpoint_every": 1000}
    cfg = _cfg(tiny_voc, tmp_path / "term", **over)
    _signal_at_call(monkeypatch, 3, signal.SIGTERM)
    with pytest.raises(SystemExit) as exc:
        train_classifier(cfg, progress=False)
    assert exc.value.code == 143
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    state = load_checkpoint(tmp_path / "term/classifier/last.pt")
    assert state["step"] == 3 and not state["finished"]  # the step in progress was finished, then saved
    monkeypatch.undo()
    _assert_same_weights(train_classifier(_cfg(tiny_voc, tmp_path / "ref", **over), progress=False),
                         train_classifier(cfg, progress=False))


def test_second_ctrl_c_stops_at_once_without_saving(tiny_voc, tmp_path, monkeypatch):
    cfg = _cfg(tiny_voc, tmp_path / "twice", **{"wood.variant": "none", "train.checkpoint_every": 1000})
    _signal_at_call(monkeypatch, 3, signal.SIGINT, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(cfg, progress=False)
    assert not (tmp_path / "twice/classifier/last.pt").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_time_based_checkpoints(tiny_voc, tmp_path, monkeypatch):
    real = objective.wood_objective
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(objective, "wood_objective", crashing)
    for minutes, step in (("1e-9", 3), ("null", None)):  # every step is "overdue"; off: none before the end
        calls["n"] = 0
        out = tmp_path / f"t{minutes}"
        cfg = _cfg(tiny_voc, out, **{"wood.variant": "none", "train.checkpoint_every": 1000,
                                     "train.checkpoint_minutes": minutes})
        with pytest.raises(RuntimeError, match="killed"):
            train_classifier(cfg, progress=False)
        last = out / "classifier/last.pt"
        assert (load_checkpoint(last)["step"] if last.exists() else None) == step


def test_out_dir_under_a_file_is_a_clear_error(tiny_voc, tmp_path):
    cfg = _cfg(tiny_voc, tmp_path / "runs" / "exp", **{"wood.variant": "none"})
    (tmp_path / "runs").write_text("a file")  # appears after the config was checked (which refuses it too)
    with pytest.raises(OutputError, match="is a file") as exc:
        train_classifier(cfg, progress=False)
    assert exc.value.path == tmp_path / "runs"


def _cli(monkeypatch, capsys, *args: object) -> tuple[int, str]:
    code, _, err = run_main(monkeypatch, capsys, *args)
    return code, err


def test_full_disk_during_training_exits_2_and_keeps_the_last_checkpoint(tiny_voc, tmp_path, monkeypatch, capsys):
    import errno

    from woodseg.train import engine

    real_save, saves = engine.save_checkpoint, {"n": 0}

    def second_save_hits_a_full_disk(path, state):
        saves["n"] += 1
        if saves["n"] == 2:
            monkeypatch.setattr(os, "write", _enospc)
        real_save(path, state)

    def _enospc(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(engine, "save_checkpoint", second_save_hits_a_full_disk)
    code, err = _cli(monkeypatch, capsys, "train", "-q", *tiny_overrides(tiny_voc, tmp_path / "full",
                                                                         **{"wood.variant": "none"}))
    monkeypatch.undo()
    last = tmp_path / "full/classifier/last.pt"
    assert code == 2 and "no space left" in err and str(last) in err and "Traceback" not in err
    assert load_checkpoint(last)["step"] == 2
    assert sorted(p.name for p in last.parent.iterdir()) == ["config.yaml", "last.pt", "metrics.jsonl", "stage.json"]


def test_out_dir_under_a_file_exits_2_via_the_cli(tiny_voc, tmp_path, monkeypatch, capsys):
    (tmp_path / "runs").write_text("a file")
    code, err = _cli(monkeypatch, capsys, "train", "-q", *tiny_overrides(tiny_voc, tmp_path / "runs" / "exp",
                                                                         **{"wood.variant": "none"}))
    assert code == 2 and f"{tmp_path / 'runs'} is a file" in err and "fix:" in err


def test_stale_temp_of_a_killed_save_is_cleaned_on_resume(tiny_voc, tmp_path):
    cfg = _cfg(tiny_voc, tmp_path / "s", **{"wood.variant": "none", "train.epochs": 1})
    folder = tmp_path / "s/classifier"
    folder.mkdir(parents=True)
    stale = folder / ".last.pt.k2j3h4g5.pt"  # a 0.x save killed mid-write
    stale.write_bytes(b"x" * 1000)
    os.utime(stale, (time.time() - 3600,) * 2)
    train_classifier(cfg, progress=False)
    assert not stale.exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_finished_run_is_not_retrained_and_restart_retrains(tiny_voc, tmp_path):
    cfg = _cfg(tiny_voc, tmp_path / "r", **{"wood.variant": "none", "train.epochs": 1})
    path = train_classifier(cfg, progress=False)
    mtime = path.stat().st_mtime_ns
    train_classifier(cfg, progress=False)
    assert path.stat().st_mtime_ns == mtime
    train_classifier(cfg, progress=False, restart=True)
    assert path.stat().st_mtime_ns != mtime


def test_checkpoint_of_another_config_is_refused(tiny_voc, tmp_path):
    train_classifier(_cfg(tiny_voc, tmp_path / "x", **{"wood.variant": "none", "train.epochs": 1}), progress=False)
    with pytest.raises(TrainingError, match="different config") as exc:
        train_classifier(_cfg(tiny_voc, tmp_path / "x", **{"wood.variant": "none", "train.epochs": 1,
                                                           "train.lr": 0.02}), progress=False)
    assert "--restart" in str(exc.value)
    # runtime-only keys may change on resume
    train_classifier(_cfg(tiny_voc, tmp_path / "x", **{"wood.variant": "none", "train.epochs": 1,
                                                       "train.log_every": 5}), progress=False)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(tiny_voc, tmp_path, monkeypatch):
    cfg = _cfg(tiny_voc, tmp_path / "nan", **{"wood.variant": "none"})
    real = objective.wood_objective
    calls = {"n": 0}

    def nan_later(*args, **kwargs):
        calls["n"] += 1
        terms = real(*args, **kwargs)
        if calls["n"] == 4:
            terms["cls_in"] = terms["cls_in"] * float("nan")
        return terms

    monkeypatch.setattr(objective, "wood_objective", nan_later)
    with pytest.raises(TrainingError, match="non-finite at step 3") as exc:
        train_classifier(cfg, progress=False)
    assert "learning rate (train.lr" in str(exc.value)
    state = load_checkpoint(tmp_path / "nan/classifier/last.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_wood_run_writes_centres_and_refreshes_on_schedule(tiny_voc, tmp_path):
    base = train_classifier(_cfg(tiny_voc, tmp_path / "b", **{"wood.variant": "none", "train.epochs": 1}),
                            progress=False)
    cfg = _cfg(tiny_voc, tmp_path / "w", **{"wood.variant": "paper", "train.init_from": base,
                                            "wood.refresh_every": 1})
    train_classifier(cfg, progress=False)
    c = Centres.load(tmp_path / "w/classifier/centres.npz")
    assert c.provenance["epoch"] == 1  # refreshed at the start of epoch 1
    assert c.class_centres.shape == (3, 512) and c.ood_centres.shape == (3, 512)
    assert c.class_valid.all() and np.isfinite(c.ood_centres).all()
    terms = read_jsonl(tmp_path / "w/classifier/metrics.jsonl")[0]
    assert {"cls_in", "cls_ood", "dist", "loss", "lr", "images_per_s"} <= set(terms)


def test_k_larger_than_ood_set_is_a_config_error(tiny_voc, tmp_path):
    base = train_classifier(_cfg(tiny_voc, tmp_path / "b", **{"wood.variant": "none", "train.epochs": 1}),
                            progress=False)
    with pytest.raises(ConfigError, match="wood.K=50") as exc:
        train_classifier(_cfg(tiny_voc, tmp_path / "k", **{"wood.variant": "paper", "train.init_from": base,
                                                           "wood.K": 50}), progress=False)
    assert "at most 12" in str(exc.value)


def test_batch_larger_than_split_is_a_data_error(tiny_voc, tmp_path):
    with pytest.raises(DataError, match="fewer than one batch"):
        train_classifier(_cfg(tiny_voc, tmp_path / "b", **{"wood.variant": "none", "train.batch_size": 64}),
                         progress=False)


def test_init_from_other_classes_is_refused(tiny_voc, tmp_path):
    from woodseg.config import ModelConfig
    from woodseg.models.cam_net import build_cam_net, classifier_checkpoint

    other = build_cam_net(ModelConfig(backbone="resnet10", weights=None, freeze_bn=False, frozen_stages=0), 3)
    torch.save(classifier_checkpoint(other, ("x", "y", "z"), {}), tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="trained on classes"):
        train_classifier(_cfg(tiny_voc, tmp_path / "c", **{"wood.variant": "none",
                                                           "train.init_from": tmp_path / "other.pt"}), progress=False)


def test_sampler_is_a_function_of_the_step_and_shards_the_global_batch():
    full = list(StepBatchSampler(10, 4, seed=1, stream="in", start=0, stop=6))
    resumed = list(StepBatchSampler(10, 4, seed=1, stream="in", start=3, stop=6))
    assert full[3:] == resumed
    epoch0 = [k[0] for batch in full[:2] for k in batch]
    assert len(set(epoch0)) == 8  # drop_last: 2 batches of 4 distinct images per epoch
    assert [k[1] for k in full[2]] == [1] * 4
    r0 = list(StepBatchSampler(10, 4, seed=1, stream="in", start=0, stop=2, rank=0, world=2))
    r1 = list(StepBatchSampler(10, 4, seed=1, stream="in", start=0, stop=2, rank=1, world=2))
    for g, a, b in zip(full, r0, r1, strict=False):
        assert sorted(a + b) == sorted(g)
    tiny = list(StepBatchSampler(3, 4, seed=0, stream="ood", start=0, stop=2))
    assert all(len(b) == 4 for b in tiny)


def test_poly_lr():
    assert poly_lr(0.1, 0, 100, 0.9) == pytest.approx(0.1)
    assert poly_lr(0.1, 50, 100, 0.9) == pytest.approx(0.1 * 0.5**0.9)
    assert poly_lr(0.1, 150, 100, 0.9) == poly_lr(0.1, 99, 100, 0.9)


def test_class_means_and_guards():
    feats = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [np.nan, np.nan]], np.float32)
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 0, 0]], np.float32)
    c, valid = class_means(feats, labels, ("a", "b", "c"))
    np.testing.assert_allclose(c[0], [2.0, 0.0])
    np.testing.assert_allclose(c[1], [1.5, 1.0])
    assert valid.tolist() == [True, True, False]


def test_kmeans_first_init_guards_and_no_empty_cluster():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (20, 3)), rng.normal(5, 0.1, (20, 3))]).astype(np.float32)
    centres, assign = kmeans_centres(x, 2, init="first", seed=0)
    assert sorted(np.bincount(assign).tolist()) == [20, 20]
    with pytest.raises(ConfigError, match="at most 40"):
        kmeans_centres(x, 41)
    with pytest.raises(DataError, match="empty"):
        kmeans_centres(np.full((3, 3), np.nan, np.float32), 2)
    dup = np.zeros((10, 3), np.float32)
    dup[5:] = 1.0
    c, a = kmeans_centres(dup, 2, init="first")  # the first 2 features are identical: falls back
    assert np.isfinite(c).all()


def test_predicted_class_centres_drop_empty_classes():
    feats = np.array([[0.0], [2.0], [10.0]], np.float32)
    logits = np.array([[5.0, 0, 0], [5.0, 0, 0], [0, 0, 5.0]], np.float32)
    c, a = predicted_class_centres(feats, logits)
    np.testing.assert_allclose(c[:, 0], [1.0, 10.0])
    assert a.tolist() == [0, 0, 1]
