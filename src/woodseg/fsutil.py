"""Atomic, durable file writes: a crash never leaves a half-written output that a resumed stage would trust.

Every output goes to a temporary file beside its target (``.<name>.wtmp<pid>.<random><suffix>``) and is
renamed over the target, so a crash leaves either the old or the new content. Durable writes also fsync
the file before the rename and the folder after it, so the same holds after a power loss: checkpoints,
configs, lists, exports and every text/JSON output. ``atomic_save`` (the per-image npz/png writer) skips
the fsyncs unless asked, as they cost ~10 ms a file and a stage writes one file per image. Outputs get the usual ``0666 & ~umask`` mode
(``mkstemp`` alone makes them 0600). Temporary files of a killed writer are removed on the next write
into their folder; the pid in the name tells them from the files a live process is still writing.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from woodseg.errors import OutputError

TEMP_TAG = ".wtmp"
"""Marks woodseg's temporary files: ``.<name>.wtmp<pid>.<random><suffix>``."""

_TEMP_RE = re.compile(r"\..*\.wtmp(\d+)\.[a-z0-9_]{8}.*")
# mkstemp names of earlier woodseg versions: ``.<name>.<random><suffix>`` with the suffix repeated.
_LEGACY_RE = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]+)")
# errnos that say the disk or the folder refuses the write, whoever raised them.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
_PROCESS_START = time.time()
_cleaned: set[Path] = set()


# ---- errors ------------------------------------------------------------------------------------------------


def output_error(path: Path, exc: OSError) -> OutputError:
    """Say why ``path`` could not be written and what to do about it."""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"no space left on the device while writing {path}; the previous file (if any) is "
                           "kept unchanged", path=path, fix="free disk space (or choose another out_dir), then re-run")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"cannot write {path}: the folder {path.parent} is read-only or not yours "
                           f"({exc.strerror})", path=path,
                           fix="make the folder writable or choose another out_dir")
    return OutputError(f"cannot write {path}: {exc.strerror or exc}", path=path,
                       fix="check the output folder and the disk, then re-run")


def ensure_dir(folder: str | Path) -> Path:
    """Create ``folder`` and its parents; a component that is a file or a read-only parent is an OutputError."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        blocker = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), folder)
        raise OutputError(f"cannot create the folder {folder}: {blocker} is a file, not a folder", path=blocker,
                          fix="remove or rename that file, or choose another out_dir") from exc
    except OSError as exc:
        raise OutputError(f"cannot create the folder {folder}: {exc.strerror or exc}", path=folder,
                          fix="create it yourself with write permission, or choose another out_dir") from exc
    return folder


# ---- permissions, durability -------------------------------------------------------------------------------


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (the rename) to disk; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- stale temporary files ---------------------------------------------------------------------------------


def _process_start(pid: int) -> float | None:
    """Start time (epoch seconds) of a live process, from Linux's /proc; None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        btime = next(int(ln.split()[1]) for ln in Path("/proc/stat").read_text().splitlines()
                     if ln.startswith("btime "))
        return btime + int(stat[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _writer_alive(pid: int, mtime: float) -> bool:
    """Whether process ``pid`` may still be writing a file last modified at ``mtime``."""
    if os.name != "posix":
        return True  # no safe liveness probe: keep the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    start = _PROCESS_START if pid == os.getpid() else _process_start(pid)
    return start is None or mtime >= start - 1.0  # older than the process: its pid was reused


def clean_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temporary files that killed writers left in ``folder``; returns what was removed.

    A woodseg temp file is stale when the process named in it is gone (or started after the file was last
    written, i.e. its pid was reused). Temp files of earlier versions carry no pid: they are removed
    when older than this process.
    """
    folder = Path(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        m = _TEMP_RE.fullmatch(entry.name)
        if m is not None:
            stale = not _writer_alive(int(m.group(1)), mtime)
        else:
            legacy = _LEGACY_RE.fullmatch(entry.name)
            stale = (legacy is not None and TEMP_TAG not in entry.name and mtime < _PROCESS_START
                     and (legacy["name"].endswith(legacy["suffix"]) or legacy["suffix"] == ".tmp"))
        if stale:
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


def _clean_once(folder: Path) -> None:
    """Clean a folder's stale temp files on this process's first write there (not on every write)."""
    key = folder.resolve()
    if key not in _cleaned:
        _cleaned.add(key)
        clean_stale_temps(folder)


# ---- atomic writes -----------------------------------------------------------------------------------------


@contextmanager
def _atomic_fd(path: Path, suffix: str | None, durable: bool) -> Iterator[tuple[int, Path]]:
    """Yield (open fd, temp path) beside ``path``; on success rename it over ``path`` (durable: fsync the
    file before, the folder after)."""
    ensure_dir(path.parent)
    _clean_once(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_TAG}{os.getpid()}.",
                                   suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from exc
    tmp_path = Path(tmp)
    closed = False
    try:
        try:
            os.chmod(tmp_path, 0o666 & ~current_umask())
        except OSError as exc:
            raise output_error(path, exc) from exc
        yield fd, tmp_path
        try:
            if durable:
                os.fsync(fd)
            os.close(fd)
            closed = True
            os.replace(tmp_path, path)
        except OSError as exc:
            raise output_error(path, exc) from exc
        if durable:
            fsync_dir(path.parent)
    except BaseException as exc:
        if not closed:
            os.close(fd)
        try:
            tmp_path.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, OutputError) and exc.errno in _WRITE_ERRNOS:
            raise output_error(path, exc) from exc
        raise


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success it replaces ``path``, else it is deleted."""
    with _atomic_fd(Path(path), suffix, durable) as (_, tmp):
        yield tmp


def atomic_write_bytes(path: str | Path, data: bytes | memoryview, *, durable: bool = True) -> None:
    with _atomic_fd(Path(path), None, durable) as (fd, _):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def atomic_save(path: str | Path, writer: Callable[[IO[bytes]], None], *, durable: bool = False) -> None:
    """Serialise with ``writer(buffer)`` in memory, then write atomically (torch.save, np.savez, PIL).

    Not fsynced by default (per-image outputs, cheap to redo); ``durable=True`` for what must survive a
    power loss (checkpoints).
    """
    buf = io.BytesIO()
    writer(buf)
    atomic_write_bytes(path, buf.getbuffer(), durable=durable)


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk (metrics logs survive a crash up to the last line)."""
    path = Path(path)
    ensure_dir(path.parent)
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=float) + "\n")
            fh.flush()
    except OSError as exc:
        raise output_error(path, exc) from exc


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file, ignoring a torn last line left by a crash."""
    out = []
    lines = [ln for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise
    return out


def sha256_file(path: str | Path) -> str:
    """The full SHA-256 hex digest of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
