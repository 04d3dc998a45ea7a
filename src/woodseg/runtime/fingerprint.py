"""Content fingerprints: what a stage was made from, so a changed input recomputes it.

A stage's record holds the config keys it uses and a content hash of every upstream file (checkpoints,
OoD lists, a seed folder's ``index.json``). Hashing reads a file once per process: results are cached by
(resolved path, size, mtime), so checking a checkpoint per image costs nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from woodseg.errors import DataError

_CACHE: dict[tuple[str, int, int], str] = {}


def fingerprint(obj: Any) -> str:
    """16 hex digits of the SHA-256 of ``obj`` as canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_sha(path: str | Path) -> str:
    """16 hex digits of the SHA-256 of a file's bytes, hashed once per (path, size, mtime) in a process."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise DataError(f"cannot read input file ({exc.strerror})", path=path,
                        fix="check the path; the stage that makes it must run first") from exc
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _CACHE[key] = h.hexdigest()[:16]
    return _CACHE[key]


def stage_record(stage: str, config: Mapping[str, Any], inputs: Mapping[str, str | Path | None],
                 content: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """What ``stage`` is made from: its config keys and the content hash of each input.

    ``inputs`` are files (hashed here); ``content`` are inputs already fingerprinted by their owner
    (a dataset split's list and labels, an OoD list).
    """
    files = {k: (None if p is None else {"path": str(p), "sha": file_sha(p)}) for k, p in inputs.items()}
    files.update({k: (None if v is None else {"path": None, "sha": v}) for k, v in (content or {}).items()})
    body = {"stage": stage, "config": json.loads(json.dumps(dict(config), default=str)), "inputs": files}
    return {**body, "fingerprint": fingerprint({"config": body["config"],
                                                "inputs": {k: v and v["sha"] for k, v in files.items()}})}


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two records (config keys and input contents), empty if equal."""
    out = []
    oc, nc = old.get("config", {}), new.get("config", {})
    out += [f"config {k}: {oc.get(k)!r} -> {nc.get(k)!r}" for k in sorted(set(oc) | set(nc)) if oc.get(k) != nc.get(k)]
    oi, ni = old.get("inputs", {}), new.get("inputs", {})
    for k in sorted(set(oi) | set(ni)):
        a, b = (oi.get(k) or {}).get("sha"), (ni.get(k) or {}).get("sha")
        if a != b:
            where = (ni.get(k) or oi.get(k) or {}).get("path")
            out.append(f"input {k} ({where}) content changed" if a and b else f"input {k}: {a} -> {b}")
    return out


def read_record(path: Path) -> dict[str, Any] | None:
    """A saved record, or None when there is none (a folder from before records, or a fresh one)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"stage record is unreadable ({exc})", path=path,
                        fix="delete it; the stage then recomputes its output") from exc
