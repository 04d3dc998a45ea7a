"""Atomic, durable writes (umask, fsync, stale temp files, full disk, read-only folders) and crash-tolerant
JSON-lines reading."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from woodseg.errors import OutputError
from woodseg.fsutil import (
    append_jsonl,
    atomic_path,
    atomic_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    clean_stale_temps,
    read_jsonl,
)


class Boom(RuntimeError):
    pass


def test_atomic_path_success_renames_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    with atomic_path(target) as tmp:
        assert tmp != target and tmp.parent == target.parent
        tmp.write_bytes(b"hello")
        assert not target.exists()  # nothing visible until the writer finished
    assert target.read_bytes() == b"hello"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_atomic_path_writer_raises_leaves_no_file_and_no_temp(tmp_path):
    target = tmp_path / "out.npz"
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half written")
            raise Boom()
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_failure_keeps_the_previous_file(tmp_path):
    target = tmp_path / "cfg.yaml"
    atomic_write_text(target, "old: 1\n")
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.write_text("new: 2\n")
            raise Boom()
    assert target.read_text() == "old: 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["cfg.yaml"]


def test_atomic_save_writer_raises_leaves_nothing(tmp_path):
    def writer(buf):
        buf.write(b"partial")
        raise Boom()

    with pytest.raises(Boom):
        atomic_save(tmp_path / "x.pt", writer)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_json_round_trip(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"k": [1, 2], "s": "x"})
    assert json.loads((tmp_path / "a.json").read_text()) == {"k": [1, 2], "s": "x"}


def test_read_jsonl_tolerates_torn_last_line(tmp_path):
    p = tmp_path / "m.jsonl"
    append_jsonl(p, {"step": 1, "loss": 0.5})
    append_jsonl(p, {"step": 2, "loss": 0.25})
    with open(p, "a") as fh:
        fh.write('{"step": 3, "lo')  # killed mid-write
    assert read_jsonl(p) == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]


def test_read_jsonl_raises_on_torn_middle_line(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n')
    with pytest.raises(json.JSONDecodeError):
        read_jsonl(p)


def test_read_jsonl_skips_blank_lines(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"step": 1}\n\n   \n{"step": 2}\n')
    assert read_jsonl(p) == [{"step": 1}, {"step": 2}]


# ---- permissions, durability, stale temp files, write failures ----------------------------------------------


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_outputs_respect_the_umask(tmp_path, umask_027):
    atomic_write_text(tmp_path / "a.yaml", "x: 1\n")
    atomic_save(tmp_path / "b.pt", lambda buf: buf.write(b"bytes"))
    with atomic_path(tmp_path / "c.npz") as tmp:
        tmp.write_bytes(b"z")
    for name in ("a.yaml", "b.pt", "c.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name  # mkstemp alone gives 0600


def test_file_is_fsynced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write_bytes(tmp_path / "last.pt", b"checkpoint")
    assert events == ["fsync-file", "replace", "fsync-dir"]
    for write in (lambda p: atomic_write_json(p, {"a": 1}), lambda p: atomic_save(p, lambda b: b.write(b"c"),
                                                                                   durable=True)):
        events.clear()
        write(tmp_path / "export.json")
        assert events == ["fsync-file", "replace", "fsync-dir"]
    events.clear()
    atomic_save(tmp_path / "seed.npz", lambda b: b.write(b"seed"))  # per-image outputs: atomic, not fsynced
    assert events == ["replace"]


_KILLED_WRITER = """
import os, signal, sys
from woodseg.fsutil import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"x" * 100000)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _src_env() -> dict[str, str]:
    import woodseg

    return {**os.environ, "PYTHONPATH": str(Path(woodseg.__file__).parents[1])}


def test_temp_file_of_a_killed_write_is_cleaned_by_the_next_write(tmp_path):
    target = tmp_path / "last.pt"
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(target)], env=_src_env(), timeout=120)
    assert proc.returncode == -signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".last.pt.") and not target.exists()
    atomic_write_text(tmp_path / "config.yaml", "a: 1\n")  # the next run writes into the folder
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_stale_temp_rules_keep_files_of_live_writers(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    try:
        live = tmp_path / f".a.pt.wtmp{sleeper.pid}.abcd1234.pt"
        dead = tmp_path / f".b.pt.wtmp{done.pid}.abcd1234.pt"
        mine = tmp_path / f".c.pt.wtmp{os.getpid()}.abcd1234.pt"  # this process is writing it
        legacy_old = tmp_path / ".last.pt.k2j3h4g5.pt"  # earlier versions' mkstemp names: no pid
        legacy_new = tmp_path / ".index.json.a1b2c3d4.json"
        user_file = tmp_path / ".hidden.cfg"
        for p in (live, dead, mine, legacy_old, legacy_new, user_file):
            p.write_bytes(b"x")
        old = time.time() - 3600
        os.utime(legacy_old, (old, old))
        os.utime(user_file, (old, old))
        removed = clean_stale_temps(tmp_path)
        assert sorted(p.name for p in removed) == sorted([dead.name, legacy_old.name])
        assert live.exists() and mine.exists() and legacy_new.exists() and user_file.exists()
        os.utime(mine, (old, old))  # a file of our pid older than this process: a previous process's, pid reused
        assert clean_stale_temps(tmp_path) == [mine]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_disk_full_keeps_the_previous_file_and_names_the_path(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    atomic_write_bytes(target, b"previous checkpoint")
    real_write = os.write

    def full(fd, data):
        if fd > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OutputError, match="no space left") as exc:
        atomic_save(target, lambda buf: buf.write(b"new checkpoint" * 1000))
    assert str(target) in str(exc.value) and exc.value.fix
    assert target.read_bytes() == b"previous checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_disk_full_at_rename_or_inside_a_writer_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "seed.npz"
    atomic_write_bytes(target, b"old")

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match="no space left"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            no_space()  # e.g. np.savez hitting a full disk
    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(OutputError, match="no space left"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["seed.npz"]


def test_read_only_folder_is_a_clear_error(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "eval.json").write_text("{}")
    if os.geteuid() != 0:  # root ignores permissions: simulate the refusal instead
        folder.chmod(0o555)
    else:
        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    try:
        with pytest.raises(OutputError, match="read-only") as exc:
            atomic_write_json(folder / "eval.json", {"a": 1})
        assert str(folder / "eval.json") in str(exc.value) and "writable" in exc.value.fix
        assert (folder / "eval.json").read_text() == "{}"
    finally:
        folder.chmod(0o755)


def test_a_path_component_that_is_a_file_is_named(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="is a file") as exc:
        atomic_write_text(blocker / "exp" / "classifier" / "config.yaml", "a: 1\n")
    assert exc.value.path == blocker
    with pytest.raises(OutputError, match="is a file"):
        append_jsonl(blocker / "metrics.jsonl", {"step": 1})
    assert blocker.read_text() == "not a folder"
