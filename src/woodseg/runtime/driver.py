"""One resumable, sharded per-image driver for every stage that maps images to files.

A per-image folder holds ``<id><suffix>`` per item and ``index.json``, the protocol (what the items were
made from). :func:`run_items`:

* checks the folder's protocol (settings) against the request (a mismatch is refused unless ``restart``)
  and its inputs (content hashes of upstream files: a change remakes this shard's files);
* takes this shard's share (:class:`~woodseg.runtime.shard.Shard`: exact, no padding or duplicates);
* on ``restart`` removes only this shard's files, so other shards' work survives;
* removes this shard's orphaned temporary files (``.<id><suffix>.*`` left by a killed write);
* plans size-grouped batches of ``batch_size`` over the whole id list (no padding) and takes this shard's
  batches, so an item's batch never depends on the shard count or on an earlier interruption;
* skips batches whose files all exist (resume), applies the bad-image policy, and writes each item
  atomically.

:func:`verify_items` is the merge step: it names the ids that have no file yet.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from woodseg.errors import DataError, ImageError
from woodseg.fsutil import atomic_write_json
from woodseg.runtime.batching import size_batches
from woodseg.runtime.paths import INDEX
from woodseg.runtime.shard import Shard

log = logging.getLogger(__name__)

OnBadImage = Literal["error", "skip"]


@dataclass(frozen=True)
class ItemFolder:
    """A per-image product folder: ``<folder>/<id><suffix>`` plus ``index.json``."""

    folder: Path
    suffix: str = ".npz"

    def path(self, item_id: str) -> Path:
        return self.folder / f"{item_id}{self.suffix}"

    @property
    def index(self) -> Path:
        return self.folder / INDEX

    def stamp(self, shard: Shard) -> Path:
        """What this shard's files were made from (a copy of ``index.json`` when they were made)."""
        return self.folder / "shards" / f"{shard.name}.json"

    def skipped_file(self, shard: Shard) -> Path:
        return self.folder / f"skipped-{shard.name}.json"

    def read_protocol(self) -> dict[str, Any] | None:
        return _read_json(self.index)


@dataclass
class DriverReport:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    already_done: int = 0
    removed: int = 0


def _canonical(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"record is unreadable ({exc})", path=path, fix="pass --restart to remake this folder") from exc


def check_protocol(items: ItemFolder, protocol: dict[str, Any], *, restart: bool, own_ids: Sequence[str],
                   shard: Shard = Shard(), inputs: dict[str, Any] | None = None) -> int:
    """Write or verify what this shard's files are made from; returns how many of its files were removed.

    ``protocol`` (settings) must match the folder's, unless ``restart``. ``inputs`` (content hashes of
    upstream files) may change: this shard's files are then remade. Each shard keeps its own stamp
    (``shards/<shard>.json``), so a shard re-run after another shard moved on still sees its files are stale.
    """
    items.folder.mkdir(parents=True, exist_ok=True)
    new = _canonical({**protocol, "inputs": inputs or {}})
    stamp_path = items.stamp(shard)
    old = _read_json(stamp_path) or items.read_protocol()
    if old is not None and old != new and not restart:
        diff = sorted(k for k in set(old) | set(new) if k != "inputs" and old.get(k) != new.get(k))
        if diff:
            detail = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:3])
            raise DataError(f"folder was made with another protocol (differs in {', '.join(diff)}: {detail})",
                            path=items.folder,
                            fix="use another out_dir, or pass --restart (on every shard) to remake it")
        changed = sorted(k for k in set(old.get("inputs", {})) | set(new["inputs"])
                         if old.get("inputs", {}).get(k) != new["inputs"].get(k))
        log.warning("%s: input(s) %s changed since these files were made: remaking %s", items.folder,
                    ", ".join(changed), shard.name)
        restart = True
    removed = 0
    if restart:
        for i in own_ids:
            p = items.path(i)
            if p.exists():
                p.unlink()
                removed += 1
        items.skipped_file(shard).unlink(missing_ok=True)
    if items.read_protocol() != new:
        atomic_write_json(items.index, new)
    if _read_json(stamp_path) != new:
        atomic_write_json(stamp_path, new)
    return removed


def clean_temporaries(items: ItemFolder, own_ids: Sequence[str]) -> int:
    """Delete temporary files of ``own_ids`` left by a killed atomic write (``.<name>.<random><suffix>``)."""
    own = {items.path(i).name for i in own_ids}
    n = 0
    for p in items.folder.glob(".*"):  # atomic writes name them ".<id><suffix>.<random><suffix>"
        if any(p.name[1:].startswith(o + ".") for o in own):
            p.unlink(missing_ok=True)
            n += 1
    return n


def plan_batches(ids: Sequence[str], key: Callable[[str], Hashable], batch_size: int,
                 on_bad_image: OnBadImage = "error") -> tuple[list[list[str]], list[str]]:
    """(size-grouped batches of the whole id list, ids whose size could not be read and are skipped).

    The plan depends only on the ids, their sizes and ``batch_size``: every shard, a resumed run and a
    single process put an image in the same batch, so its result never depends on how the work was split.
    """
    skipped: list[str] = []

    def keyed() -> Iterator[tuple[Hashable, str]]:
        for item_id in ids:
            try:
                k = key(item_id)
            except ImageError as exc:
                if on_bad_image != "skip":
                    raise
                log.warning("skipping %s", exc)
                skipped.append(item_id)
                continue
            yield k, item_id

    return list(size_batches(keyed(), batch_size)), skipped


def run_items(
    items: ItemFolder,
    ids: Sequence[str],
    *,
    protocol: dict[str, Any],
    inputs: dict[str, Any] | None = None,
    key: Callable[[str], Hashable],
    load: Callable[[str], Any],
    compute: Callable[[list[tuple[str, Any]]], list[Any]],
    write: Callable[[Path, Any], None],
    batch_size: int = 1,
    shard: Shard = Shard(),
    restart: bool = False,
    on_bad_image: OnBadImage = "error",
    progress: bool = True,
    desc: str = "items",
) -> DriverReport:
    """Make ``items.path(id)`` for this shard's ``ids`` that have none; see the module docstring.

    ``key(id)`` is an item's batching key, cheap to get (an image's size from its header); ``load(id)``
    reads one input (an :class:`ImageError` is the bad-image case); ``compute(batch)`` maps a batch of
    ``(id, input)`` pairs with equal keys to one payload per item; ``write(path, payload)`` saves one item
    atomically (e.g. through :mod:`woodseg.fsutil`). Shards take whole batches of the plan
    (:func:`plan_batches`), and a batch with a missing item is computed again whole, so results do not
    depend on the shard count or on where a killed run stopped. ``batch_size`` belongs in ``protocol``.
    """
    if batch_size < 1:
        raise DataError(f"batch size must be >= 1, got {batch_size}", fix="set a positive batch size")
    plan, skipped = plan_batches(list(dict.fromkeys(ids)), key, batch_size, on_bad_image)
    mine = shard.take(plan)
    own = [i for batch in mine for i in batch]
    report = DriverReport(skipped=list(skipped))
    report.removed = check_protocol(items, protocol, restart=restart, own_ids=own, shard=shard, inputs=inputs)
    if clean_temporaries(items, own):
        log.info("%s: removed orphaned temporary files of a killed run", items.folder)
    todo = [batch for batch in mine if not all(items.path(i).exists() for i in batch)]
    report.already_done = len(own) - sum(len(b) for b in todo)
    bar = tqdm(total=len(own), initial=report.already_done, desc=desc, unit="img", disable=not progress,
               dynamic_ncols=True, leave=False)
    try:
        for batch in todo:
            loaded = []
            for item_id in batch:
                try:
                    loaded.append((item_id, load(item_id)))
                except ImageError as exc:
                    if on_bad_image != "skip":
                        raise
                    log.warning("skipping %s", exc)
                    report.skipped.append(item_id)
            payloads = compute(loaded) if loaded else []
            for (item_id, _), payload in zip(loaded, payloads, strict=True):
                write(items.path(item_id), payload)
                report.written.append(item_id)
            bar.update(len(batch))
    finally:
        bar.close()
        if report.skipped:
            atomic_write_json(items.skipped_file(shard), sorted(set(report.skipped)))
    return report


def verify_items(items: ItemFolder, ids: Sequence[str], *, what: str = "items", fix: str = "") -> None:
    """The merge step: every id has its file, or a :class:`DataError` names the missing ones."""
    missing = [i for i in ids if not items.path(i).exists()]
    if not missing:
        return
    skipped: set[str] = set()
    for f in items.folder.glob("skipped-shard-*.json"):
        skipped.update(json.loads(f.read_text(encoding="utf-8")))
    bad = [i for i in missing if i in skipped]
    note = f" ({len(bad)} of them skipped as unreadable images: {bad[:5]})" if bad else ""
    raise DataError(f"{len(missing)} of {len(ids)} {what} are missing: {missing[:10]}"
                    f"{' ...' if len(missing) > 10 else ''}{note}", path=items.folder,
                    fix=fix or "run (or finish) every shard of the stage that makes them; it resumes where it stopped")
