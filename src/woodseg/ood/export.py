"""Export a review: ``ood_list.txt`` for the trainer (and the official code) plus a manifest and the log.

``ood_list.txt`` lists each kept image once, as its pool entry (path relative to the pool's image root),
in the official format. Order matters (it seeds the official K-means with the first K entries), so the
classes are interleaved: every class's best kept image (review order), then every class's second, ...
The first K centres then span the classes instead of all coming from the first one.

The manifest (CSV, or JSON with ``fmt="json"``) has one row per decided candidate: path, image id, class,
p(c), own decision, effective state, whether the image is in the list, reviewer, time and the image's SHA-256.
``decisions.jsonl`` is the full event log; ``export.json`` the summary and provenance.

The review recorded each image's SHA-256 when it was decided; a kept image whose file changed since is
refused (the list would otherwise vouch for a picture nobody looked at). CSV cells that a spreadsheet would
run as a formula (starting with = + - @, tab or CR) get a leading apostrophe (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from woodseg.errors import DataError
from woodseg.fsutil import atomic_write_json, atomic_write_text, sha256_file
from woodseg.ood.review.store import ELSEWHERE, UNREVIEWED, ReviewStore

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("path", "image_id", "class", "p", "rank", "decision", "state", "in_list", "reviewer", "decided_at",
                    "sha256", "compactness", "stability")

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class ExportResult:
    ood_list: Path
    manifest: Path
    log: Path
    num_images: int
    per_class: dict[str, int]


def kept_entries(store: ReviewStore) -> tuple[list[str], dict[str, int]]:
    """Kept images in list order (classes interleaved, review order within a class), and kept count per class."""
    per_class: dict[str, list[str]] = {name: [] for name in store.class_names()}
    for s in store.states():
        if s.state == "keep":
            per_class[s.class_name].append(s.entry)
    order: list[str] = []
    seen: set[str] = set()
    depth = max((len(v) for v in per_class.values()), default=0)
    for k in range(depth):
        for entries in per_class.values():
            if k < len(entries) and entries[k] not in seen:
                seen.add(entries[k])
                order.append(entries[k])
    return order, {name: len(v) for name, v in per_class.items()}


def ood_list_text(store: ReviewStore) -> str:
    """The list as downloaded; refuses, like :func:`write_export`, when a kept image changed since its review."""
    manifest_rows(store)
    return "".join(f"{e}\n" for e in kept_entries(store)[0])


def manifest_rows(store: ReviewStore) -> list[dict[str, Any]]:
    """One row per candidate that was decided (or rejected through another class)."""
    listed = set(kept_entries(store)[0])
    last: dict[int, dict[str, Any]] = {}
    for ev in store.events():
        last[ev["candidate"]] = ev
    checksums: dict[int, str] = {}
    recorded = store.seen_hashes()
    changed: dict[str, Path | None] = {}
    rows = []
    for s in store.states():
        if s.own == UNREVIEWED and s.state != ELSEWHERE:
            continue
        if s.image not in checksums:
            path = store.image_path(s.image)
            if path is not None and path.is_file():
                checksums[s.image] = sha256_file(path)
            elif s.entry in listed:
                raise DataError("a kept image is missing, so the export cannot checksum it", path=path,
                                fix="restore the file (or relocate the pool with --root) before exporting")
            else:
                checksums[s.image] = ""
        if s.entry in listed and recorded.get(s.image, checksums[s.image]) != checksums[s.image]:
            changed[s.entry] = store.image_path(s.image)
        ev = last.get(s.id, {})
        rows.append({
            "path": s.entry, "image_id": Path(s.entry).stem, "class": s.class_name, "p": round(s.p, 6), "rank": s.rank,
            "decision": s.own, "state": s.state, "in_list": s.entry in listed,
            "reviewer": ev.get("reviewer", ""), "decided_at": ev.get("at", ""), "sha256": checksums[s.image],
            "compactness": s.compactness, "stability": s.stability,
        })
    if changed:
        names = sorted(changed)
        raise DataError(f"{len(names)} kept image(s) changed on disk after they were reviewed: "
                        f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''}", path=changed[names[0]],
                        fix="restore the original files, or look at them again in the review app and decide "
                            "again (k): a new decision records the file as it is now")
    return rows


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would evaluate (``=``, ``+``, ``-``, ``@``, tab, CR first) with a leading ``'``."""
    if isinstance(value, str) and value[:1] in _FORMULA_START:
        return "'" + value
    return value


def manifest_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r[k] is None else csv_cell(r[k])) for k in MANIFEST_COLUMNS})
    return buf.getvalue()


def write_export(store: ReviewStore, out_dir: str | Path, fmt: Literal["csv", "json"] = "csv") -> ExportResult:
    """Write ``ood_list.txt``, ``manifest.csv|json``, ``decisions.jsonl`` and ``export.json`` atomically."""
    out_dir = Path(out_dir)
    entries, per_class = kept_entries(store)
    if not entries:
        log.warning("no image is kept yet: ood_list.txt will be empty")
    rows = manifest_rows(store)
    list_path = out_dir / "ood_list.txt"
    manifest = out_dir / f"manifest.{fmt}"
    log_path = out_dir / "decisions.jsonl"
    atomic_write_text(list_path, "".join(f"{e}\n" for e in entries))
    if fmt == "json":
        atomic_write_json(manifest, rows)
    else:
        atomic_write_text(manifest, manifest_csv(rows))
    atomic_write_text(log_path, "".join(json.dumps(ev) + "\n" for ev in store.events()))
    meta = store.meta()
    atomic_write_json(out_dir / "export.json", {
        "format": "woodseg.ood-export/1", "exported": datetime.now(UTC).isoformat(timespec="seconds"),
        "num_images": len(entries), "kept_per_class": per_class, "root": meta.get("root"), "pool": meta.get("pool"),
        "checkpoint": meta.get("checkpoint"), "ranked_fingerprint": meta.get("ranked_fingerprint"),
        "settings": meta.get("settings"), "database": str(store.path.resolve()),
        "files": {"ood_list": list_path.name, "manifest": manifest.name, "log": log_path.name},
    })
    return ExportResult(list_path, manifest, log_path, len(entries), per_class)
