"""``woodseg ood rank``: score a pool on disk, resumable and sharded, then merge into ranked candidates.

Layout of a ranking folder::

    <out>/parts/shard-000-of-002/manifest.json   what the shard scores with (checkpoint and pool fingerprints)
    <out>/parts/shard-000-of-002/chunk-000000.npz  indices, scores [k, C], compactness, stability, failures
    <out>/ranked.json                             merged provenance, threshold, per-class counts and files
    <out>/scores.npz                              every image's p(c) (re-threshold without rescoring)
    <out>/candidates/00_aeroplane.csv             rank,path,image_id,p,compactness,stability

Shard i of n takes pool positions i, i+n, i+2n, ... Each chunk file is written atomically after every
``flush_every`` images or ``flush_seconds``, and on interruption, so a restart scores only what is
missing. ``merge`` refuses parts made with a different checkpoint, pool, class list or settings, and
parts that are missing or unfinished. With one shard, ``rank`` merges by itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from woodseg.data.classes import check_class_names
from woodseg.data.dataset import OodSet
from woodseg.errors import DataError, ImageError
from woodseg.fsutil import atomic_save, atomic_write_json
from woodseg.ood.candidates import (
    Candidate,
    class_file_name,
    read_candidates_csv,
    select_candidates,
    write_candidates_csv,
)
from woodseg.ood.pool import pool_root, read_pool
from woodseg.ood.resolution import check_resolution
from woodseg.ood.scoring import OnBadImage, check_flags, iter_scores
from woodseg.runtime.device import resolve_device
from woodseg.runtime.fingerprint import file_sha
from woodseg.runtime.shard import Shard

log = logging.getLogger(__name__)

PART_FORMAT = "woodseg.ood-rank-part/1"
RANKED_FORMAT = "woodseg.ood-ranked/1"
# A score depends on these; "batch_size" too: batched convolutions round in the last bit by batch size.
_IDENTITY = ("checkpoint_sha", "pool_fingerprint", "num_images", "class_names", "long_side", "batch_size", "flags",
             "num_shards")


@dataclass
class Ranked:
    """A merged ranking: candidates per class, where the images are, and provenance."""

    class_names: tuple[str, ...]
    root: Path
    candidates: dict[str, list[Candidate]]
    meta: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return str(self.meta["fingerprint"])


def file_fingerprint(path: str | Path) -> str:
    """Content hash of a file (:func:`woodseg.runtime.fingerprint.file_sha`)."""
    return file_sha(path)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def rank_shard(
    checkpoint: str | Path,
    pool_file: str | Path,
    out_dir: str | Path,
    *,
    root: str | Path | None = None,
    shard: Shard = Shard(),
    threshold: float = 0.5,
    batch_size: int = 16,
    long_side: int | None = 500,
    train_resize_long: Sequence[int] | None = None,
    strict: bool = False,
    device: str | torch.device = "auto",
    flags: Sequence[str] = (),
    on_bad_image: OnBadImage = "error",
    flush_every: int = 256,
    flush_seconds: float = 60.0,
    workers: int = 0,
    progress: bool = True,
) -> Path:
    """Score this shard's images, continuing an interrupted run; merge when it is the only shard.

    ``long_side`` is the resolution images are scored at (None: native size); ``train_resize_long``, the
    classifier's training range, makes a scoring resolution more than 2x away a warning (``strict``: an
    error). Returns the part folder (or the ranking folder after an automatic merge).
    """
    from woodseg.models.cam_net import load_classifier

    flags = check_flags(flags)
    out_dir = Path(out_dir)
    root = Path(root) if root is not None else pool_root(pool_file)
    ood = read_pool(pool_file, root)
    native = None
    if long_side is None and len(ood):
        from woodseg.data.images import image_size

        try:
            native = max(image_size(ood.paths[0]))
        except ImageError:  # reported (or skipped) when it is scored
            native = None
    check_resolution(long_side, train_resize_long, strict=strict, native_long_side=native)
    dev = resolve_device(device)
    model, class_names = load_classifier(checkpoint, dev)
    check_class_names(class_names, checkpoint, fix="retrain it with each class named once (data.class_names)")
    manifest = {
        "format": PART_FORMAT,
        "checkpoint": str(Path(checkpoint).resolve()),
        "checkpoint_sha": file_fingerprint(checkpoint),
        "pool": str(Path(pool_file).resolve()),
        "pool_fingerprint": ood.fingerprint(),
        "root": str(root.resolve()),
        "num_images": len(ood),
        "class_names": list(class_names),
        "long_side": long_side,
        "train_resize_long": list(train_resize_long) if train_resize_long is not None else None,
        "batch_size": batch_size,
        "flags": list(flags),
        "threshold": threshold,
        "shard": shard.index,
        "num_shards": shard.count,
    }
    part = out_dir / "parts" / shard.name
    done = _resume_state(part, manifest)
    positions = [i for i in shard.positions(len(ood)) if i not in done]
    log.info("%s: %d images to score, %d already done", shard.name, len(positions), len(done))
    _score_into_part(model, ood, class_names, part, positions, manifest, done_before=len(done),
                     batch_size=batch_size, long_side=long_side, device=dev, flags=flags, threshold=threshold,
                     on_bad_image=on_bad_image, flush_every=flush_every, flush_seconds=flush_seconds,
                     workers=workers, progress=progress)
    if shard.count == 1:
        merge_parts(out_dir, threshold=threshold)
        return out_dir
    return part


def _resume_state(part: Path, manifest: dict[str, Any]) -> set[int]:
    """Indices already scored in ``part``; refuses a part made with other inputs or settings."""
    mpath = part / "manifest.json"
    if not mpath.is_file():
        atomic_write_json(mpath, {**manifest, "started": _now(), "finished": False})
        return set()
    old = _read_json(mpath)
    keys = [*_IDENTITY, "shard"] + (["threshold"] if "stability" in manifest["flags"] else [])
    diff = [k for k in keys if old.get(k) != manifest[k]]
    if diff:
        raise DataError(
            f"this shard folder was started with different {', '.join(diff)} "
            f"({'; '.join(f'{k}: {old.get(k)!r} -> {manifest[k]!r}' for k in diff[:3])})",
            path=part, fix="use a new --out folder, or delete this shard folder to start it over",
        )
    done: set[int] = set()
    for ch in _chunks(part):
        done.update(int(i) for i in ch["indices"])
    return done


def _score_into_part(model: torch.nn.Module, ood: OodSet, class_names: Sequence[str], part: Path,
                     positions: list[int], manifest: dict[str, Any], *, done_before: int, batch_size: int,
                     long_side: int | None, device: torch.device, flags: tuple[str, ...], threshold: float,
                     on_bad_image: OnBadImage, flush_every: int, flush_seconds: float, workers: int,
                     progress: bool) -> None:
    seq = max((int(p.stem.split("-")[1]) for p in part.glob("chunk-*.npz")), default=-1) + 1
    buffer: list[Any] = []
    last_flush = time.monotonic()
    start, scored = time.monotonic(), 0

    def flush() -> None:
        nonlocal seq, buffer, last_flush
        if buffer:
            _write_chunk(part / f"chunk-{seq:06d}.npz", buffer)
            seq += 1
            buffer = []
        last_flush = time.monotonic()

    bar = tqdm(total=done_before + len(positions), initial=done_before, unit="img", desc=part.name,
               disable=not progress, dynamic_ncols=True)
    try:
        for ch in iter_scores(model, ood, class_names, indices=positions, batch_size=batch_size, long_side=long_side,
                              device=device, on_bad_image=on_bad_image, flags=flags, threshold=threshold,
                              workers=workers):
            buffer.append(ch)
            scored += len(ch.indices)
            bar.update(len(ch.indices))
            if sum(len(c.indices) for c in buffer) >= flush_every or time.monotonic() - last_flush >= flush_seconds:
                flush()
    finally:
        flush()  # an interrupted run keeps every finished batch
        bar.close()
    elapsed = time.monotonic() - start
    rate = scored / elapsed if elapsed > 0 else float("nan")
    log.info("%s: scored %d images in %.1f s (%.2f img/s)", part.name, scored, elapsed, rate)
    total_done = sum(len(c["indices"]) for c in _chunks(part))
    atomic_write_json(part / "manifest.json", {**manifest, "started": _read_json(part / "manifest.json").get("started"),
                                               "finished": True, "done": total_done, "finished_at": _now(),
                                               "last_run_images_per_s": round(rate, 3)})


def _write_chunk(path: Path, chunks: list[Any]) -> None:
    failed = [f for c in chunks for f in c.failed]
    arrays = {
        "indices": np.concatenate([c.indices for c in chunks]),
        "scores": np.concatenate([c.scores for c in chunks]),
        "compactness": np.concatenate([c.compactness for c in chunks]),
        "stability": np.concatenate([c.stability for c in chunks]),
        "failed_indices": np.asarray([i for i, _ in failed], dtype=np.int64),
        "failed_messages": np.asarray([m for _, m in failed], dtype=str),
    }
    atomic_save(path, lambda fh: np.savez(fh, **arrays))


def _chunks(part: Path) -> list[dict[str, np.ndarray]]:
    out = []
    for p in sorted(part.glob("chunk-*.npz")):
        try:
            with np.load(p, allow_pickle=False) as z:
                out.append({k: z[k] for k in z.files})
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"chunk file is unreadable ({exc})", path=p,
                            fix="delete it; the next `woodseg ood rank` run re-scores its images") from exc
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read ({exc})", path=path, fix="delete the folder and re-run the stage") from exc


def merge_parts(out_dir: str | Path, *, threshold: float | None = None) -> Ranked:
    """Join every shard's part into ``ranked.json``, ``scores.npz`` and one candidate CSV per class."""
    out_dir = Path(out_dir)
    parts = sorted((out_dir / "parts").glob("shard-*"))
    if not parts:
        raise DataError("no shard parts found under parts/", path=out_dir,
                        fix="run `woodseg ood rank --out <this folder>` (with --shard i/n for each shard) first")
    manifests = [(p, _read_json(p / "manifest.json")) for p in parts]
    ref_part, ref = manifests[0]
    for p, m in manifests[1:]:
        diff = [k for k in _IDENTITY if m.get(k) != ref.get(k)]
        if diff:
            raise DataError(
                f"parts disagree on {', '.join(diff)}: {ref_part.name} vs {p.name} "
                f"({'; '.join(f'{k}: {ref.get(k)!r} vs {m.get(k)!r}' for k in diff[:3])}; "
                "made with a different checkpoint, pool, resolution or settings)",
                path=out_dir, fix="merge only parts of one ranking run; re-run the odd shard with the same inputs",
            )
    n_shards = int(ref["num_shards"])
    present = {int(m["shard"]) for _, m in manifests}
    missing = sorted(set(range(n_shards)) - present)
    if missing:
        raise DataError(f"shard(s) {missing} of {n_shards} are missing", path=out_dir,
                        fix=f"run `woodseg ood rank --shard i/{n_shards}` for them into this folder")
    unfinished = [p.name for p, m in manifests if not m.get("finished")]
    if unfinished:
        raise DataError(f"shard(s) {unfinished} did not finish", path=out_dir,
                        fix="re-run their `woodseg ood rank --shard` command: it continues where it stopped")
    threshold = float(ref["threshold"] if threshold is None else threshold)
    n, names = int(ref["num_images"]), tuple(ref["class_names"])
    arrays = {k: np.full((n, len(names)), np.nan, dtype=np.float32) for k in ("scores", "compactness", "stability")}
    seen = np.zeros(n, dtype=bool)
    failed: dict[int, str] = {}
    for p, _ in manifests:
        for ch in _chunks(p):
            idx = ch["indices"].astype(np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise DataError("chunk holds positions outside the pool", path=p, fix="delete this shard folder and re-run it")
            for k in arrays:
                arrays[k][idx] = ch[k]
            seen[idx] = True
            failed.update(zip(ch["failed_indices"].tolist(), ch["failed_messages"].tolist(), strict=True))
    if not seen.all():
        first = np.flatnonzero(~seen)[:5].tolist()
        raise DataError(f"{int((~seen).sum())} pool images have no score (positions {first}...)", path=out_dir,
                        fix="re-run the shards' `woodseg ood rank` commands; they score only what is missing")
    if "stability" in ref["flags"] and threshold < float(ref["threshold"]):
        log.warning("merge threshold %.3f is below the ranking threshold %.3f: stability is missing for the "
                    "newly admitted candidates", threshold, ref["threshold"])
    ood = read_pool(ref["pool"], ref["root"], check_exists=False)
    if ood.fingerprint() != ref["pool_fingerprint"]:
        raise DataError("the pool file changed since ranking", path=ref["pool"],
                        fix="restore it, or rank the new pool into a new folder")
    cands = select_candidates(arrays["scores"], ood.ids, names, threshold,
                              compactness=arrays["compactness"], stability=arrays["stability"])
    atomic_save(out_dir / "scores.npz", lambda fh: np.savez(fh, ids=np.asarray(ood.ids, dtype=str),
                                                             class_names=np.asarray(names, dtype=str), **arrays))
    meta = {k: ref.get(k) for k in ("checkpoint", "checkpoint_sha", "pool", "pool_fingerprint", "root", "num_images",
                                    "class_names", "long_side", "train_resize_long", "batch_size", "flags")}
    meta.update(threshold=threshold, num_shards=n_shards, failed=[{"path": ood.ids[i], "error": m} for i, m in sorted(failed.items())])
    return write_ranked(out_dir, cands, meta)


def write_ranked(out_dir: str | Path, candidates: dict[str, list[Candidate]], meta: dict[str, Any]) -> Ranked:
    """Write per-class candidate CSVs and ``ranked.json``. ``meta`` needs class_names, root and threshold.

    Usable in-process after :func:`score_pool` + :func:`select_candidates` (the demo), so the review
    store can read the result like any ranking.
    """
    out_dir = Path(out_dir)
    names = check_class_names(meta["class_names"], out_dir, fix="rank with a classifier that names each class once")
    classes = []
    for i, name in enumerate(names):
        fname = class_file_name(i, name)
        write_candidates_csv(out_dir / "candidates" / fname, candidates.get(name, []))
        classes.append({"name": name, "file": f"candidates/{fname}", "count": len(candidates.get(name, []))})
    h = hashlib.sha256(json.dumps([meta.get("checkpoint_sha"), meta.get("pool_fingerprint"), meta["threshold"],
                                   [(c.entry, c.class_name, round(c.p, 6)) for n in names for c in candidates.get(n, [])]]).encode())
    full = {"format": RANKED_FORMAT, **meta, "classes": classes, "fingerprint": h.hexdigest()[:16], "created": _now()}
    atomic_write_json(out_dir / "ranked.json", full)
    log.info("ranked candidates: %s", ", ".join(f"{c['name']} {c['count']}" for c in classes))
    return Ranked(names, Path(meta["root"]), {n: list(candidates.get(n, [])) for n in names}, full)


def load_ranked(out_dir: str | Path) -> Ranked:
    """Read a merged ranking folder (``ranked.json`` + candidate CSVs)."""
    out_dir = Path(out_dir)
    path = out_dir / "ranked.json"
    if not path.is_file():
        parts = (out_dir / "parts").is_dir()
        raise DataError("no ranked.json here", path=out_dir,
                        fix="run `woodseg ood merge` on this folder" if parts else "run `woodseg ood rank` first")
    meta = _read_json(path)
    if meta.get("format") != RANKED_FORMAT:
        raise DataError(f"unknown ranking format {meta.get('format')!r}", path=path, fix="re-run `woodseg ood merge`")
    names = check_class_names(meta["class_names"], path, fix="re-run `woodseg ood merge` (do not edit ranked.json)")
    cands = {c["name"]: read_candidates_csv(out_dir / c["file"], c["name"]) for c in meta["classes"]}
    return Ranked(names, Path(meta["root"]), cands, meta)

