"""Content fingerprints: a changed file changes the record, an unchanged one is hashed once per process."""

from __future__ import annotations

import os

from woodseg.runtime import fingerprint as fp


def test_file_hash_follows_content_and_is_cached(tmp_path, monkeypatch):
    f = tmp_path / "model.pt"
    f.write_bytes(b"a" * 1000)
    first = fp.file_sha(f)
    calls = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: calls.append(a[0]) or real_open(*a, **k))
    assert fp.file_sha(f) == first and not calls  # cached: not read again
    f.write_bytes(b"b" * 1000)
    os.utime(f, ns=(1, 1))  # another mtime
    assert fp.file_sha(f) != first and calls


def test_records_name_what_changed(tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    r1 = fp.stage_record("s", {"k": 1}, {"init_from": a})
    assert fp.stage_record("s", {"k": 1}, {"init_from": a}) == r1
    assert fp.changes(r1, r1) == []
    moved = fp.stage_record("s", {"k": 1}, {"init_from": b})
    assert moved["fingerprint"] != r1["fingerprint"]
    assert "input init_from" in fp.changes(r1, moved)[0]
    other = fp.stage_record("s", {"k": 2}, {"init_from": a}, {"ood": "abc"})
    assert any("config k: 1 -> 2" in c for c in fp.changes(r1, other))
    assert any(c.startswith("input ood") for c in fp.changes(r1, other))
    assert fp.read_record(tmp_path / "missing.json") is None
