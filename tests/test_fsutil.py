"""Atomic writes and crash-tolerant JSON-lines reading."""

from __future__ import annotations

import json

import pytest

from woodseg.fsutil import (
    append_jsonl,
    atomic_path,
    atomic_save,
    atomic_write_json,
    atomic_write_text,
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
