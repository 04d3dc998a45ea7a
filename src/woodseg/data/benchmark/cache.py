"""Generate-once cache: one folder per (version, spec), built atomically.

``ensure_benchmark(spec)`` returns ``<cache>/v<version>-<spec hash>`` and generates it only when that
folder is missing, incomplete, or its manifest names another version or spec. Generation writes into a
temporary sibling (``.<name>.tmp-*``) that is renamed into place only once everything, manifest last, is
written: a crash leaves at most a temporary folder, never one that looks complete. Stale temporaries
older than a day are swept on the next call. A folder that is neither empty nor a benchmark is never
replaced (an error instead). If two processes race, the first rename wins and the other
drops its copy.

The cache root is ``cache_dir`` if given, else ``$WOODSEG_CACHE/benchmark``, else
``~/.cache/woodseg/benchmark``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from woodseg.data.benchmark import generate as _generate
from woodseg.data.benchmark import spec as _spec
from woodseg.data.benchmark.spec import BenchmarkSpec
from woodseg.errors import DataError

log = logging.getLogger(__name__)

STALE_SECONDS = 24 * 3600
_generations = 0


def generation_count() -> int:
    """How many benchmarks this process has generated (tests use it to tell reuse from regeneration)."""
    return _generations


def default_cache_dir(kind: str = "benchmark") -> Path:
    """``$WOODSEG_CACHE/<kind>``, else ``~/.cache/woodseg/<kind>`` (kinds: benchmark, corpus)."""
    env = os.environ.get("WOODSEG_CACHE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "woodseg"
    return base / kind


def cache_folder(kind: str, cache_dir: str | Path | None = None) -> Path:
    """The cache folder of ``kind`` (``cache_dir`` if given, else :func:`default_cache_dir`), created."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(kind)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the {kind} cache ({exc})", path=cache,
                        fix="set WOODSEG_CACHE to a writable folder or pass cache_dir") from exc
    return cache


def check_benchmark(root: str | Path, spec: BenchmarkSpec | None = None, verify: bool = False) -> str | None:
    """Why ``root`` is not a complete benchmark of this version (and spec), or None if it is.

    Cheap by default (manifest, version, spec, file count of the image folders); ``verify`` also
    recomputes the checksum of every file.
    """
    root = Path(root)
    mpath = root / _generate.MANIFEST
    if not mpath.is_file():
        return "no manifest.json"
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return f"unreadable manifest ({exc})"
    if not manifest.get("complete"):
        return "manifest does not mark the benchmark complete"
    if manifest.get("version") != _spec.BENCHMARK_VERSION:
        return f"version {manifest.get('version')} != {_spec.BENCHMARK_VERSION}"
    if spec is not None and manifest.get("spec") != spec.to_dict():
        return "manifest holds another spec"
    try:
        splits = manifest["counts"]["splits"]
        n_in = splits["train_aug"] + splits["val"]
        n_pool = manifest["counts"]["pool"]["total"]
    except (KeyError, TypeError):
        return "manifest lacks counts"
    for folder, ext, n in (("JPEGImages", ".jpg", n_in), ("SegmentationClass", ".png", n_in),
                           ("Annotations", ".xml", n_in), ("ood_pool/images", ".jpg", n_pool),
                           ("ood_pool/masks", ".png", n_pool)):
        d = root / folder
        found = sum(1 for p in d.iterdir() if p.suffix == ext) if d.is_dir() else 0
        if found != n:
            return f"{folder} holds {found} files, the manifest says {n}"
    if verify:
        checksum, _ = _generate.tree_checksum(root)
        if checksum != manifest.get("checksum"):
            return "checksum mismatch: files were changed"
    return None


def build_benchmark(spec: BenchmarkSpec, dest: str | Path, log_fn: Callable[[str], None] | None = None) -> Path:
    """Generate ``spec`` into ``dest`` atomically (temporary sibling, then rename).

    An existing ``dest`` is replaced only if it is empty or a benchmark (holds a manifest.json): a folder of
    anything else is refused rather than deleted.
    """
    global _generations
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or (any(dest.iterdir()) and not (dest / _generate.MANIFEST).is_file()
                                                 and not _looks_partial(dest))):
        raise DataError("refusing to replace a folder that is not a benchmark", path=dest,
                        fix="choose an empty or new output folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        _generations += 1
        _generate.generate_into(spec, tmp, log=log_fn)
        _install(tmp, dest, spec)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _looks_partial(root: Path) -> bool:
    """A folder holding only benchmark sub-folders (a half copy from an old, non-atomic writer)."""
    known = {"JPEGImages", "Annotations", "SegmentationClass", "ImageSets", "ood_pool", "classes.txt",
             "image_truth.csv", "README.txt"}
    return all(p.name in known for p in root.iterdir())


def _install(tmp: Path, dest: Path, spec: BenchmarkSpec) -> None:
    if dest.exists():
        if check_benchmark(dest, spec) is None:  # someone else finished first
            shutil.rmtree(tmp, ignore_errors=True)
            return
        trash = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.replace(dest, trash / dest.name)
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.replace(tmp, dest)
    except OSError:
        if check_benchmark(dest, spec) is None:  # lost a race to an identical copy
            shutil.rmtree(tmp, ignore_errors=True)
            return
        raise


def _sweep(cache_dir: Path) -> None:
    now = time.time()
    for p in [*cache_dir.glob(".*.tmp-*"), *cache_dir.glob(".*.old-*")]:
        try:
            if p.is_dir() and now - p.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def ensure_benchmark(spec: BenchmarkSpec | None = None, cache_dir: str | Path | None = None, *,
                     verify: bool = False, log_fn: Callable[[str], None] | None = None) -> Path:
    """The root of the benchmark for ``spec`` (default spec if None), generating it if needed."""
    spec = spec or BenchmarkSpec()
    cache = cache_folder("benchmark", cache_dir)
    _sweep(cache)
    root = cache / spec.folder_name()
    reason = check_benchmark(root, spec, verify=verify) if root.exists() else "missing"
    if reason is None:
        return root
    log.info("generating benchmark %s (%s)", root, reason)
    return build_benchmark(spec, root, log_fn)
