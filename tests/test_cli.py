"""The ``woodseg`` command end to end on the tiny VOC dataset, in-process (CliRunner) and as a real process."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import typer
import yaml
from typer.testing import CliRunner

from helpers import CLASSES, benchmark_script, run_main, tiny_overrides
from woodseg.cli import app
from woodseg.config import Config, load_config
from woodseg.models.checkpoint import load_checkpoint

runner = CliRunner()


def invoke(*args: object, ok: bool = True):
    res = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    if ok:
        detail = ""
        if res.exc_info is not None and res.exception is not None and not isinstance(res.exception, SystemExit):
            import traceback

            detail = "".join(traceback.format_exception(*res.exc_info))
        assert res.exit_code == 0, f"woodseg {' '.join(map(str, args))} -> {res.exit_code}\n{res.output}\n{detail}"
    return res


def flat(text: str) -> str:
    """Whitespace-collapsed text (rich wraps long lines)."""
    return " ".join(text.split())


def alnum(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def split_ids(root: Path, split: str) -> list[str]:
    return (root / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()


# ---- help and config -------------------------------------------------------------------------------------


def _commands() -> list[tuple[list[str], object]]:
    out: list[tuple[list[str], object]] = []

    def walk(group, prefix: list[str]) -> None:
        for name, cmd in sorted(group.commands.items()):
            out.append((prefix + [name], cmd))
            if getattr(cmd, "commands", None):
                walk(cmd, prefix + [name])

    walk(typer.main.get_command(app), [])
    return out


def test_every_command_has_help():
    commands = _commands()
    names = {" ".join(p) for p, _ in commands}
    assert {"train", "cam", "eval", "run", "config", "config list", "config show", "ood"} <= names
    res = invoke("--help")
    for top in ("train", "cam", "eval", "run", "config", "ood"):
        assert top in res.output
    for path, cmd in commands:
        text = (cmd.help or "").strip()
        assert text, f"`woodseg {' '.join(path)}` has no help text"
        res = invoke(*path, "--help")
        assert "Usage" in res.output
        first = alnum(text.splitlines()[0])[:40]
        assert first in alnum(res.output), f"help of `woodseg {' '.join(path)}` does not explain it:\n{res.output}"


def test_stage_help_mentions_overrides_and_outputs():
    out = flat(invoke("train", "--help").output)
    assert "--config" in out and "--restart" in out and "OVERRIDES" in out.upper()
    assert "last.pt" in out and "init_from" in out
    assert "seeds/" in flat(invoke("cam", "--help").output) and "--shard" in flat(invoke("cam", "--help").output)
    assert "eval/seeds.json" in flat(invoke("eval", "--help").output)
    assert "--from" in flat(invoke("run", "--help").output)


def test_config_show_prints_every_section():
    res = invoke("config", "show")
    data = yaml.safe_load(res.output)
    assert set(data) == set(Config.model_fields) - {"demo"}  # only the demo's config has a demo section
    for section in ("data", "model", "train", "wood", "cam", "eval", "runtime"):
        assert isinstance(data[section], dict) and data[section]
    assert data == Config().model_dump(mode="json", exclude={"demo"})


def test_config_show_applies_overrides_and_files(tmp_path):
    for args in (["train.epochs=3", "cam.scales=[1.0]"], ["--", "train.epochs=3", "cam.scales=[1.0]"]):
        data = yaml.safe_load(invoke("config", "show", *args).output)  # overrides alone: on the defaults
        assert data["train"]["epochs"] == 3 and data["cam"]["scales"] == [1.0]
        assert data["name"] == Config().name
    p = tmp_path / "c.yaml"
    p.write_text("name: fromfile\nwood:\n  K: 5\n")
    data = yaml.safe_load(invoke("config", "show", p, "wood.lam=0.5").output)
    assert data["name"] == "fromfile" and data["wood"]["K"] == 5 and data["wood"]["lam"] == 0.5


def test_config_list_names_bundled_configs():
    from woodseg.config import bundled_config_names

    res = invoke("config", "list")
    assert res.output.split() == bundled_config_names()


# ---- end to end ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tiny_voc: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    out = tmp_path_factory.mktemp("cli_runs")
    base, wood = out / "base", out / "wood"
    base_ovr = tiny_overrides(tiny_voc, base, **{"wood.variant": "none"})
    wood_ovr = tiny_overrides(tiny_voc, wood, **{"wood.variant": "paper",
                                                 "train.init_from": base / "classifier" / "last.pt"})
    t0 = time.perf_counter()
    res = {
        "train_base": invoke("train", "-q", *base_ovr),
        "train_wood": invoke("train", "-q", *wood_ovr),
        "cam_base": invoke("cam", "-q", *base_ovr),
        "cam_wood": invoke("cam", "-q", *wood_ovr),
        "eval_base": invoke("eval", "-q", *base_ovr),
        "eval_wood": invoke("eval", "-q", *wood_ovr),
    }
    return SimpleNamespace(root=tiny_voc, base=base, wood=wood, base_ovr=base_ovr, wood_ovr=wood_ovr, res=res,
                           seconds=time.perf_counter() - t0)


def test_end_to_end_is_fast(runs):
    assert runs.seconds < 60, f"train x2 + cam x2 + eval x2 took {runs.seconds:.1f}s"


@pytest.mark.parametrize("which", ["base", "wood"])
def test_train_outputs(runs, which):
    out = getattr(runs, which) / "classifier"
    assert (out / "last.pt").is_file()
    assert f"classifier: {out / 'last.pt'}" in flat(runs.res[f"train_{which}"].output)
    n_steps = len(split_ids(runs.root, "train_aug")) // 8  # batch 8, drop_last, 1 epoch
    assert n_steps >= 2
    lines = (out / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) for r in records)
    assert [r["step"] for r in records] == list(range(1, n_steps + 1))  # one object per step
    for r in records:
        assert math.isfinite(r["loss"]) and r["loss"] > 0
    state = load_checkpoint(out / "last.pt")
    assert state["finished"] is True and state["step"] == n_steps
    assert list(state["class_names"]) == list(CLASSES)
    assert state["variant"] == ("none" if which == "base" else "paper")
    ovr = runs.base_ovr if which == "base" else runs.wood_ovr
    assert load_config(out / "config.yaml") == load_config(None, ovr)  # the resolved config is saved


def test_wood_writes_centres_and_baseline_does_not(runs):
    assert (runs.wood / "classifier" / "centres.npz").is_file()
    assert not (runs.base / "classifier" / "centres.npz").exists()
    with np.load(runs.wood / "classifier" / "centres.npz", allow_pickle=False) as f:
        assert len(f.files) > 0


def test_wood_starts_from_the_baseline(runs):
    base = load_checkpoint(runs.base / "classifier" / "last.pt")["model"]
    wood = load_checkpoint(runs.wood / "classifier" / "last.pt")["model"]
    assert base.keys() == wood.keys()
    # a few SGD steps move the backbone only a little from F_in; a fresh random init would be unrelated
    conv = next(k for k, v in base.items() if v.ndim == 4)
    w_b, w_w = base[conv].flatten(), wood[conv].flatten()
    assert not torch.equal(w_b, w_w)
    assert torch.nn.functional.cosine_similarity(w_b, w_w, dim=0) > 0.99


@pytest.mark.parametrize("which", ["base", "wood"])
def test_cam_outputs(runs, which):
    cams = getattr(runs, which) / "seeds"
    expected = set(split_ids(runs.root, "train")) | set(split_ids(runs.root, "val"))
    assert {p.stem for p in cams.glob("*.npz")} == expected
    with np.load(cams / f"{sorted(expected)[0]}.npz", allow_pickle=False) as f:
        assert f["high_res"].shape[1:] == (48, 48)
        assert np.all((f["high_res"] >= 0) & (f["high_res"] <= 1 + 1e-6))
    assert "seeds:" in runs.res[f"cam_{which}"].output


@pytest.mark.parametrize("which", ["base", "wood"])
def test_eval_outputs(runs, which):
    path = getattr(runs, which) / "eval" / "seeds.json"
    data = json.loads(path.read_text())
    for split in ("train", "val"):
        assert split in data, f"eval.json has no entry for split {split}"
        proto, best = data[split]["protocol"], data[split]["best"]
        assert proto["split"] == split
        assert isinstance(proto["threshold_selection"], str) and proto["threshold_selection"]
        assert proto["scales"] == [1.0, 0.5]
        assert proto["crf"] is False
        assert proto["n_images"] == len(split_ids(runs.root, split))
        for key in ("miou", "precision", "recall", "f1"):
            assert 0.0 <= best[key] <= 1.0, (split, key, best[key])
        assert set(best["per_class_iou"]) == {"background", *CLASSES}
    # the held-out split is judged at the threshold picked on the seed split
    assert data["val"]["best"]["threshold"] == data["train"]["best"]["threshold"]
    assert "train" in data["train"]["protocol"]["threshold_selection"]


@pytest.mark.parametrize("which", ["base", "wood"])
def test_eval_prints_table_with_split_and_protocol(runs, which):
    out = flat(runs.res[f"eval_{which}"].output)
    assert "split 'train'" in out and "split 'val'" in out
    assert "mIoU" in out
    assert out.count("CRF off") == 2  # one protocol line per table
    assert "protocol:" in out


def test_eval_of_a_wood_run_shows_the_safeguard(runs):
    out = flat(runs.res["eval_wood"].output)
    assert "safeguard (no pixel masks)" in out and "F_in" in out
    report = json.loads((runs.wood / "eval" / "safeguard.json").read_text())
    assert set(report["runs"]) == {"W-OoD", "F_in"} and isinstance(report["warn"], bool)
    assert report["runs"]["F_in"]["n_heldout"] == len(split_ids(runs.root, "val"))
    assert report["paths"]["F_in"] == str(runs.base)
    assert not (runs.base / "eval" / "safeguard.json").exists()  # F_in itself has nothing to compare with


# ---- bad input: exit code 2, one error line with a fix, no traceback -------------------------------------




def assert_clean_error(code: int, out: str, err: str, one_line: bool = True) -> str:
    """Exit 2; one 'error:' line (config errors may list several keys under it), then a 'fix:' line, last."""
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = err.rstrip("\n").splitlines()
    idx = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(idx) == 1, err
    i = idx[0]
    assert lines[-1].strip().startswith("fix:"), err
    if one_line:
        assert i + 2 == len(lines), f"expected 'error:' then one 'fix:' line last:\n{err}"
    return "\n".join(lines[i:])


def test_missing_data_root(monkeypatch, capsys, tiny_voc, tmp_path):
    missing = tmp_path / "no_such_voc"
    ovr = tiny_overrides(tiny_voc, tmp_path / "out", **{"wood.variant": "none", "data.root": missing})
    msg = assert_clean_error(*run_main(monkeypatch, capsys, "train", "-q", *ovr))
    assert str(missing) in msg and "does not exist" in msg
    assert not (tmp_path / "out" / "classifier" / "last.pt").exists()


def test_unset_data_root(monkeypatch, capsys, tmp_path):
    msg = assert_clean_error(*run_main(monkeypatch, capsys, "train", "-q", f"out_dir={tmp_path}"))
    assert "data.root" in msg


def test_invalid_override(monkeypatch, capsys):
    msg = assert_clean_error(*run_main(monkeypatch, capsys, "config", "show", "wood.tau=2", "train.epochs=0"),
                             one_line=False)
    assert "wood.tau" in msg and "train.epochs" in msg
    msg = assert_clean_error(*run_main(monkeypatch, capsys, "train", "wood.tau=2"), one_line=False)
    assert "wood.tau" in msg


def test_empty_ood_list(monkeypatch, capsys, runs, tmp_path):
    empty = tmp_path / "empty_ood.txt"
    empty.write_text("# nothing here\n\n")
    ovr = tiny_overrides(runs.root, tmp_path / "out", **{
        "wood.variant": "paper", "train.init_from": runs.base / "classifier" / "last.pt", "data.ood_list": empty})
    msg = assert_clean_error(*run_main(monkeypatch, capsys, "train", "-q", *ovr))
    assert str(empty) in msg and "empty" in msg
    assert "wood.variant=none" in msg


def test_k_larger_than_ood_set(monkeypatch, capsys, runs, tmp_path):
    n_ood = len((runs.root / "ood_list.txt").read_text().split())
    ovr = tiny_overrides(runs.root, tmp_path / "out", **{
        "wood.variant": "paper", "train.init_from": runs.base / "classifier" / "last.pt", "wood.K": n_ood + 38})
    msg = assert_clean_error(*run_main(monkeypatch, capsys, "train", "-q", *ovr))
    assert f"wood.K={n_ood + 38}" in msg and str(n_ood) in msg
    assert not (tmp_path / "out" / "classifier" / "last.pt").exists()


# ---- re-running ------------------------------------------------------------------------------------------


def _copy_run(src: Path, dst: Path) -> tuple[Path, int]:
    """Copy a finished run and age its checkpoint, so that any rewrite changes the mtime."""
    shutil.copytree(src, dst)
    last = dst / "classifier" / "last.pt"
    old = time.time() - 1000
    os.utime(last, (old, old))
    return last, last.stat().st_mtime_ns


def test_rerun_train_skips_then_restart_retrains(runs, tmp_path, caplog):
    run = tmp_path / "base_copy"
    last, mtime = _copy_run(runs.base, run)
    metrics_before = (run / "classifier" / "metrics.jsonl").read_text()
    ovr = tiny_overrides(runs.root, run, **{"wood.variant": "none"})

    with caplog.at_level(logging.INFO):
        invoke("train", "-q", *ovr)
    assert "already trained" in caplog.text
    assert last.stat().st_mtime_ns == mtime
    assert (run / "classifier" / "metrics.jsonl").read_text() == metrics_before

    caplog.clear()
    invoke("train", "-q", "--restart", *ovr)
    assert last.stat().st_mtime_ns != mtime
    assert "already trained" not in caplog.text
    steps = [r["step"] for r in map(json.loads, (run / "classifier" / "metrics.jsonl").read_text().splitlines())]
    n_steps = len(split_ids(runs.root, "train_aug")) // 8
    assert steps == list(range(1, n_steps + 1))  # a fresh log, not appended to the old one
    assert load_checkpoint(last)["finished"] is True


def test_rerun_train_as_real_process(runs, tmp_path):
    """The installed entry point: a finished run is reported as trained and left alone."""
    run = tmp_path / "base_copy"
    last, mtime = _copy_run(runs.base, run)
    ovr = tiny_overrides(runs.root, run, **{"wood.variant": "none"})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "woodseg", "train", "-q", *ovr], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "already trained" in proc.stderr
    assert f"classifier: {last}" in flat(proc.stdout)
    assert last.stat().st_mtime_ns == mtime


def test_bad_input_as_real_process(tmp_path):
    exe = Path(sys.executable).with_name("woodseg")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "woodseg"]
    proc = subprocess.run([*cmd, "config", "show", "--", "train.epochs"], capture_output=True, text=True, timeout=60)
    assert_clean_error(proc.returncode, proc.stdout, proc.stderr)
    assert "train.epochs" in proc.stderr
    proc = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=60, env={**os.environ,
                                                                                              "COLUMNS": "200"})
    assert proc.returncode == 0 and "train" in proc.stdout and "W-OoD" in proc.stdout


def test_loss_balance_script(runs, tmp_path):
    """benchmarks/loss_balance.py on a finished W-OoD run: every term, finite gradients, and the OoD BCE term
    leaves the in-distribution features alone."""
    mod = benchmark_script("loss_balance")
    res = mod.term_gradients(runs.wood, batches=1)
    assert set(res) == {"cls_in", "cls_ood", "dist"}
    for row in res.values():
        assert all(math.isfinite(v) for v in row.values())
        assert row["backbone"] > 0
    assert res["cls_ood"]["z"] == 0.0 and res["cls_in"]["z"] > 0 and res["dist"]["z"] > 0
    out = tmp_path / "balance.md"
    mod.main([str(runs.wood), "--batches", "1", "--out", str(out)])
    assert "| dist |" in out.read_text() and "variant paper" in out.read_text()


# ---- hostile inputs: configs, class lists, folders where files belong, OoD ids ----------------------------


def test_config_file_problems_are_clean_errors(monkeypatch, capsys, tmp_path):
    (tmp_path / "self.yaml").write_text("_base_: self.yaml\n")
    msg = assert_clean_error(*run_main(monkeypatch, capsys, "config", "show", tmp_path / "self.yaml"))
    assert "cycle" in msg
    (tmp_path / "latin.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    msg = assert_clean_error(*run_main(monkeypatch, capsys, "config", "show", tmp_path / "latin.yaml"))
    assert "not UTF-8" in msg and "latin.yaml" in msg
    msg = assert_clean_error(*run_main(monkeypatch, capsys, "train", "data.class_names=[a,b,a]"), one_line=False)
    assert "data.class_names" in msg and "'a'" in msg


def test_dash_c_demo_beside_a_demo_folder_reads_the_bundled_config(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    code, out, err = run_main(monkeypatch, capsys, "config", "show", "demo")
    assert code in (0, None) and "name: demo" in out, err


def test_out_dir_below_a_file_is_a_config_error(monkeypatch, capsys, tmp_path):
    (tmp_path / "taken").write_text("x")
    msg = assert_clean_error(*run_main(monkeypatch, capsys, "train", f"out_dir={tmp_path / 'taken' / 'run'}"),
                             one_line=False)
    assert "out_dir" in msg and "is a file, not a folder" in msg


def test_classes_txt_folder_stops_train_instead_of_using_voc_classes(monkeypatch, capsys, tiny_voc, tmp_path):
    root = tmp_path / "voc"
    shutil.copytree(tiny_voc, root)
    (root / "classes.txt").unlink()
    (root / "classes.txt").mkdir()
    ovr = tiny_overrides(root, tmp_path / "out", **{"wood.variant": "none"})
    msg = assert_clean_error(*run_main(monkeypatch, capsys, "train", "-q", *ovr))
    assert "class list is a folder, not a file" in msg and "classes.txt" in msg


def test_ood_list_folder_is_named_and_the_fix_is_a_real_setting(monkeypatch, capsys, tiny_voc, tmp_path):
    (tmp_path / "ood_list.txt").mkdir()
    ovr = tiny_overrides(tiny_voc, tmp_path / "out", **{"data.ood_list": tmp_path / "ood_list.txt"})
    msg = assert_clean_error(*run_main(monkeypatch, capsys, "train", "-q", *ovr))
    assert "OoD list is a folder, not a file" in msg and "data.ood_list=" in msg and "--ood-list" not in msg


def test_ood_list_of_image_ids_is_read(monkeypatch, capsys, tiny_voc, tmp_path):
    ids = sorted(p.stem for p in (tiny_voc / "ood").iterdir())
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    # wood.K above the list's size stops right after the list is read: the ids resolved to images
    ovr = tiny_overrides(tiny_voc, tmp_path / "out", **{"data.ood_list": tmp_path / "ids.txt", "wood.K": 99})
    msg = assert_clean_error(*run_main(monkeypatch, capsys, "train", "-q", *ovr))
    assert f"has only {len(ids)} images" in msg
