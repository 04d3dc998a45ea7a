"""The review store: SQLite (stdlib, WAL), every decision an appended event, state = last event.

Tables: ``meta`` (settings, provenance), ``classes``, ``images`` (the pool images that are candidates: the
only files the web app will serve), ``candidates`` (image x class, p(c), flags, review position) and
``events`` (append-only: triggers refuse UPDATE and DELETE). The state of a candidate is its last event;
an undo appends an event that restores the previous state, pointing at the event it reverts. Nothing is
ever deleted, so a restart resumes exactly, and two tabs writing at once both land in the log.
``current`` holds each candidate's last event, kept by a trigger inside the inserting transaction, so reading
a state costs the same with ten events or a million. ``seen`` records each decided image's SHA-256 (with size
and mtime) so that the export can refuse a file replaced after it was reviewed.

Rejecting an image for one class means it shows a target object, so it is no OoD for any class: with
``reject_everywhere`` (the default) its other candidates count as "rejected elsewhere", leave the queues
and stay out of the export. Turn it off to keep decisions strictly per class.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from woodseg.errors import ConfigError, DataError, check_file
from woodseg.fsutil import sha256_file
from woodseg.ood.ordering import check_order, order_candidates
from woodseg.ood.rank import Ranked

STORE_FORMAT = "woodseg.ood-review/1"
DECISIONS = ("keep", "reject", "skip")
UNREVIEWED = "unreviewed"
ELSEWHERE = "rejected-elsewhere"
MAX_REVIEWER_LEN = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS classes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS images (id INTEGER PRIMARY KEY, entry TEXT NOT NULL UNIQUE, path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY,
    image INTEGER NOT NULL REFERENCES images(id),
    class INTEGER NOT NULL REFERENCES classes(id),
    p REAL NOT NULL, rank INTEGER NOT NULL, compactness REAL, stability REAL,
    position INTEGER,
    UNIQUE (image, class)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    candidate INTEGER NOT NULL REFERENCES candidates(id),
    decision TEXT NOT NULL CHECK (decision IN ('keep', 'reject', 'skip', 'unreviewed')),
    reviewer TEXT NOT NULL,
    at TEXT NOT NULL,
    p REAL NOT NULL,
    reverts INTEGER REFERENCES events(seq),
    client TEXT
);
CREATE INDEX IF NOT EXISTS events_by_candidate ON events (candidate, seq);
CREATE INDEX IF NOT EXISTS events_by_reviewer ON events (reviewer, seq);
CREATE INDEX IF NOT EXISTS candidates_by_class ON candidates (class, position);
CREATE INDEX IF NOT EXISTS events_by_reverts ON events (reverts) WHERE reverts IS NOT NULL;
CREATE TABLE IF NOT EXISTS current (
    candidate INTEGER PRIMARY KEY REFERENCES candidates(id),
    decision TEXT NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS events_current AFTER INSERT ON events
    BEGIN INSERT OR REPLACE INTO current (candidate, decision, seq) VALUES (NEW.candidate, NEW.decision, NEW.seq); END;
CREATE TABLE IF NOT EXISTS seen (
    image INTEGER PRIMARY KEY REFERENCES images(id),
    sha256 TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, at TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'review events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'review events are append-only'); END;
"""

_CURRENT = "SELECT candidate, decision, seq FROM current"


@dataclass
class ReviewSettings:
    """How the review runs; stored in the database and changeable on restart."""

    target_n: int = 50
    order: str = "p"
    flag: str | None = None
    flag_threshold: float = 0.5
    reject_everywhere: bool = True

    def check(self) -> ReviewSettings:
        if self.target_n < 1:
            raise ConfigError(f"target n must be >= 1, got {self.target_n}", fix="pass --target-n 1 or more")
        check_order(self.order, self.flag)
        return self


@dataclass
class CandidateState:
    """A candidate as the review sees it: scores, flags, own decision and the effective state."""

    id: int
    image: int
    entry: str
    class_name: str
    p: float
    rank: int
    position: int | None
    compactness: float | None
    stability: float | None
    flagged: bool
    own: str
    seq: int
    state: str
    rejected_in: list[str] = field(default_factory=list)
    kept_in: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ClassProgress:
    """Review progress of one class; r = rejected / reviewed, expected cost = n / (1 - r)."""

    name: str
    candidates: int
    hidden: int
    reviewed: int
    kept: int
    rejected: int
    skipped: int
    overridden: int
    auto_rejected: int
    remaining: int
    target_n: int
    r: float | None
    expected_cost: float | None
    expected_remaining: float | None
    reached: bool
    exhausted: bool

    def to_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


@dataclass
class DecisionResult:
    seq: int
    candidate: int
    decision: str
    conflict: bool
    previous: str


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def check_reviewer(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_REVIEWER_LEN or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ValueError(f"reviewer name must be 1-{MAX_REVIEWER_LEN} printable characters")
    return name


class ReviewStore:
    """Open a review database. Use :meth:`create` to make one from a ranking."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        check_file(self.path, "review database",
                   "start `woodseg ood review --ranked <ranking folder> --db <file>` to create it")
        try:
            fmt = self._meta_raw("format")
        except sqlite3.DatabaseError as exc:
            raise _open_error(self.path, exc) from exc
        if fmt != STORE_FORMAT:
            raise DataError(f"not a woodseg review database (format {fmt!r})", path=self.path,
                            fix="pass the .sqlite file `woodseg ood review` made")
        self._upgrade()
        # Held open while the store lives: closing the last connection makes SQLite checkpoint the WAL,
        # which would otherwise happen at the end of every web request (~15 ms each).
        self._keeper: sqlite3.Connection | None = sqlite3.connect(self.path, check_same_thread=False)
        self._keeper.execute("SELECT COUNT(*) FROM meta").fetchone()  # attaches it to the WAL

    def _upgrade(self) -> None:
        """Add the ``current`` and ``seen`` tables to a database made before them (once, in one transaction)."""
        with self._conn() as con:
            have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index', 'trigger')")}
        if {"current", "seen", "events_current", "events_by_reverts"} <= have:
            return
        try:
            con = self._connect()
            try:
                con.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nINSERT OR REPLACE INTO current (candidate, decision, seq) "
                                  "SELECT candidate, decision, MAX(seq) FROM events GROUP BY candidate;\nCOMMIT;")
            finally:
                con.close()
        except sqlite3.OperationalError as exc:
            raise DataError(f"cannot upgrade the review database ({exc})", path=self.path,
                            fix="make the file and its folder writable (and free some disk space), then start again") from exc

    def close(self) -> None:
        """Release the idle connection that keeps the WAL open (each call or session has its own)."""
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None

    # -- connections -------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA foreign_keys = ON")
        con.execute("PRAGMA busy_timeout = 30000")
        return con

    @contextmanager
    def session(self) -> Iterator[None]:
        """Share one connection among the calls made inside (in this thread): one per web request."""
        if getattr(self._local, "con", None) is not None:
            yield
            return
        self._local.con = self._connect()
        try:
            yield
        finally:
            con, self._local.con = self._local.con, None
            con.close()

    @contextmanager
    def _conn(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        shared = getattr(self._local, "con", None)
        con = shared if shared is not None else self._connect()
        try:
            if write:
                con.execute("BEGIN IMMEDIATE")
                try:
                    yield con
                except BaseException:
                    if con.in_transaction:  # SQLite may have rolled back already (SQLITE_FULL does)
                        con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            else:
                yield con
        finally:
            if shared is None:
                con.close()

    def _meta_raw(self, key: str) -> Any:
        with self._conn() as con:
            row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def meta(self) -> dict[str, Any]:
        with self._conn() as con:
            return {r["key"]: json.loads(r["value"]) for r in con.execute("SELECT key, value FROM meta")}

    # -- creation ----------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, ranked: Ranked, settings: ReviewSettings | None = None) -> ReviewStore:
        """Make a new database from a merged ranking (refuses to overwrite an existing file)."""
        path = Path(path)
        settings = (settings or ReviewSettings()).check()
        if path.exists():
            raise DataError("review database already exists", path=path,
                            fix="open it (leave out --ranked) to resume, or choose another --db")
        if not any(ranked.candidates.values()):
            raise DataError("the ranking holds no candidate for any class", path=ranked.meta.get("pool"),
                            fix="lower --threshold at `woodseg ood merge`, or rank a larger pool")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.creating")
        tmp.unlink(missing_ok=True)
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            con.executescript(_SCHEMA)
            con.execute("BEGIN")
            meta = {"format": STORE_FORMAT, "created": now_iso(), "ranked_fingerprint": ranked.fingerprint,
                    "root": str(ranked.root), "threshold": ranked.meta.get("threshold"),
                    "checkpoint": ranked.meta.get("checkpoint"), "pool": ranked.meta.get("pool"),
                    "class_names": list(ranked.class_names), "settings": asdict(settings),
                    **({"long_side": ranked.meta["long_side"]} if "long_side" in ranked.meta else {})}
            con.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
            image_ids: dict[str, int] = {}
            for ci, name in enumerate(ranked.class_names):
                con.execute("INSERT INTO classes (id, name) VALUES (?, ?)", (ci, name))
                for cand in ranked.candidates.get(name, []):
                    if cand.entry not in image_ids:
                        cur = con.execute("INSERT INTO images (entry, path) VALUES (?, ?)",
                                          (cand.entry, str(_resolve(ranked.root, cand.entry))))
                        image_ids[cand.entry] = int(cur.lastrowid or 0)
                    con.execute("INSERT INTO candidates (image, class, p, rank, compactness, stability) "
                                "VALUES (?, ?, ?, ?, ?, ?)",
                                (image_ids[cand.entry], ci, cand.p, cand.rank, _nan_none(cand.compactness),
                                 _nan_none(cand.stability)))
            _set_positions(con, settings)
            con.execute("COMMIT")
            con.execute("PRAGMA journal_mode = WAL")
        finally:
            con.close()
        tmp.replace(path)
        return cls(path)

    @classmethod
    def open_or_create(cls, path: str | Path, ranked: Ranked | None = None,
                       settings: ReviewSettings | None = None) -> ReviewStore:
        """Resume ``path`` if it exists (checking it belongs to ``ranked``), else create it from ``ranked``."""
        path = Path(path)
        if not path.exists():
            if ranked is None:
                raise DataError("review database does not exist", path=path,
                                fix="pass --ranked <ranking folder> to create it")
            return cls.create(path, ranked, settings)
        store = cls(path)
        if ranked is not None and store.meta()["ranked_fingerprint"] != ranked.fingerprint:
            raise DataError("this review database was made from a different ranking", path=path,
                            fix="pass the ranking it was made from, leave out --ranked, or choose a new --db")
        if settings is not None:
            store.update_settings(settings)
        return store

    # -- settings ----------------------------------------------------------------------------------
    @property
    def settings(self) -> ReviewSettings:
        return ReviewSettings(**self.meta()["settings"])

    def update_settings(self, settings: ReviewSettings) -> None:
        settings.check()
        with self._conn(write=True) as con:
            con.execute("UPDATE meta SET value = ? WHERE key = 'settings'", (json.dumps(asdict(settings)),))
            _set_positions(con, settings)

    def relocate(self, root: str | Path) -> None:
        """Point relative pool entries at a new image root (the images moved)."""
        root = Path(root)
        with self._conn(write=True) as con:
            for r in con.execute("SELECT id, entry FROM images").fetchall():
                con.execute("UPDATE images SET path = ? WHERE id = ?", (str(_resolve(root, r["entry"])), r["id"]))
            con.execute("UPDATE meta SET value = ? WHERE key = 'root'", (json.dumps(str(root)),))

    # -- reading -----------------------------------------------------------------------------------
    def class_names(self) -> list[str]:
        with self._conn() as con:
            return [r[0] for r in con.execute("SELECT name FROM classes ORDER BY id")]

    def class_id(self, name: str) -> int | None:
        with self._conn() as con:
            row = con.execute("SELECT id FROM classes WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def image_path(self, image: int) -> Path | None:
        """The file of a pool image by its database id (never by a path from the client)."""
        with self._conn() as con:
            row = con.execute("SELECT path FROM images WHERE id = ?", (image,)).fetchone()
        return None if row is None else Path(row[0])

    def states(self, class_name: str | None = None, *, include_hidden: bool = True) -> list[CandidateState]:
        """Candidates (of one class, or all) in review order, with own and effective states."""
        settings = self.settings
        with self._conn() as con:
            rejected_in, kept_in = _decided_elsewhere(con, class_name)
            sql = (f"SELECT c.id, c.image, i.entry, k.name AS class_name, c.p, c.rank, c.position, c.compactness, "
                   f"c.stability, COALESCE(e.decision, '{UNREVIEWED}') AS own, COALESCE(e.seq, 0) AS seq "
                   f"FROM candidates c JOIN images i ON i.id = c.image JOIN classes k ON k.id = c.class "
                   f"LEFT JOIN ({_CURRENT}) e ON e.candidate = c.id ")
            args: tuple[Any, ...] = ()
            if class_name is not None:
                sql += "WHERE k.name = ? "
                args = (class_name,)
            sql += "ORDER BY k.id, c.position IS NULL, c.position, c.rank"
            rows = con.execute(sql, args).fetchall()
        out = []
        for r in rows:
            if not include_hidden and r["position"] is None:
                continue
            rej = sorted(c for c in rejected_in.get(r["image"], ()) if c != r["class_name"])
            kept = sorted(c for c in kept_in.get(r["image"], ()) if c != r["class_name"])
            out.append(CandidateState(
                id=r["id"], image=r["image"], entry=r["entry"], class_name=r["class_name"], p=r["p"], rank=r["rank"],
                position=r["position"], compactness=r["compactness"], stability=r["stability"],
                flagged=_flagged(r, settings), own=r["own"], seq=r["seq"],
                state=_effective(r["own"], rej, settings.reject_everywhere), rejected_in=rej, kept_in=kept))
        return out

    def candidate(self, candidate_id: int) -> CandidateState | None:
        with self._conn() as con:
            row = con.execute("SELECT k.name FROM candidates c JOIN classes k ON k.id = c.class WHERE c.id = ?",
                              (candidate_id,)).fetchone()
        if row is None:
            return None
        return next(s for s in self.states(row[0]) if s.id == candidate_id)

    def progress(self, class_name: str | None = None) -> dict[str, ClassProgress]:
        """Per class (or one class) counts, running positive rate r and expected cost n / (1 - r)."""
        settings = self.settings
        n = settings.target_n
        names = self.class_names() if class_name is None else [class_name]
        acc: dict[str, dict[str, int]] = {
            name: dict.fromkeys(("candidates", "hidden", "reviewed", "kept", "rejected", "skipped", "overridden",
                                 "auto_rejected", "remaining"), 0) for name in names}
        sql = ("SELECT k.name, c.position, c.image, COALESCE(e.decision, ?) FROM candidates c "
               f"JOIN classes k ON k.id = c.class LEFT JOIN ({_CURRENT}) e ON e.candidate = c.id")
        args: tuple[Any, ...] = (UNREVIEWED,)
        if class_name is not None:
            sql += " WHERE k.name = ?"
            args = (UNREVIEWED, class_name)
        with self._conn() as con:
            rejected_in, _ = _decided_elsewhere(con, class_name)
            rows = con.execute(sql, args).fetchall()
        for name, position, image, own in rows:
            a = acc[name]
            rej = rejected_in.get(image)
            elsewhere = settings.reject_everywhere and bool(rej) and (len(rej) > 1 or name not in rej)
            state = own if own == "reject" or not elsewhere else ELSEWHERE
            a["candidates"] += 1
            a["hidden"] += position is None
            a["reviewed"] += own in ("keep", "reject")
            a["rejected"] += own == "reject"
            a["skipped"] += own == "skip"
            a["kept"] += state == "keep"
            a["overridden"] += own == "keep" and state == ELSEWHERE
            a["auto_rejected"] += own in (UNREVIEWED, "skip") and state == ELSEWHERE
            a["remaining"] += position is not None and state == UNREVIEWED
        out = {}
        for name, a in acc.items():
            r = a["rejected"] / a["reviewed"] if a["reviewed"] else None
            cost = (math.inf if r >= 1 else n / (1 - r)) if r is not None else None
            rem = (math.inf if r >= 1 else max(0, n - a["kept"]) / (1 - r)) if r is not None else None
            out[name] = ClassProgress(name=name, target_n=n, r=r, expected_cost=cost, expected_remaining=rem,
                                      reached=a["kept"] >= n, exhausted=a["remaining"] == 0 and a["kept"] < n, **a)
        return out

    def events(self, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The decision log from ``after`` (exclusive), oldest first."""
        sql = ("SELECT e.seq, e.candidate, i.entry, k.name AS class_name, e.decision, e.reviewer, e.at, e.p, "
               "e.reverts, e.client FROM events e JOIN candidates c ON c.id = e.candidate "
               "JOIN images i ON i.id = c.image JOIN classes k ON k.id = c.class WHERE e.seq > ? ORDER BY e.seq")
        args: tuple[Any, ...] = (after,)
        if limit is not None:
            sql += " LIMIT ?"
            args = (after, limit)
        with self._conn() as con:
            return [dict(r) for r in con.execute(sql, args)]

    def pace(self, reviewer: str, *, window: int = 30, pause_s: float = 300.0) -> dict[str, Any]:
        """The reviewer's looks per minute over their latest ``window`` decisions (undos not counted).

        A gap longer than ``pause_s`` ends the stretch measured, so a lunch break does not halve the pace.
        Reads ``window`` rows through the (reviewer, seq) index: the cost does not grow with the log.
        """
        with self._conn() as con:
            rows = con.execute("SELECT at FROM events WHERE reviewer = ? AND reverts IS NULL ORDER BY seq DESC LIMIT ?",
                               (reviewer, window + 1)).fetchall()
        times = [datetime.fromisoformat(r[0]) for r in rows]
        n = 1 if times else 0
        while n < len(times) and (times[n - 1] - times[n]).total_seconds() <= pause_s:
            n += 1
        minutes = (times[0] - times[n - 1]).total_seconds() / 60 if n >= 2 else 0.0
        rate = (n - 1) / minutes if minutes > 0 else None
        return {"reviewer": reviewer, "looks": n, "minutes": round(minutes, 3),
                "looks_per_minute": None if rate is None else round(rate, 2)}

    def record_shown(self, image: int) -> None:
        """Remember the SHA-256 of an image the first time it is shown (a decision refreshes it)."""
        with self._conn() as con:
            if con.execute("SELECT 1 FROM seen WHERE image = ?", (image,)).fetchone() is not None:
                return
        with self._conn(write=True) as con:
            row = con.execute("SELECT path FROM images WHERE id = ?", (image,)).fetchone()
            if row is not None:
                _record_seen(con, image, Path(row["path"]), replace=False)

    def seen_hashes(self) -> dict[int, str]:
        """Image id -> SHA-256 of the file as it was when last decided (or first shown)."""
        with self._conn() as con:
            return {int(r[0]): r[1] for r in con.execute("SELECT image, sha256 FROM seen")}

    # -- writing -----------------------------------------------------------------------------------
    def decide(self, candidate_id: int, decision: str, reviewer: str, *, base_seq: int | None = None,
               client: str | None = None) -> DecisionResult:
        """Append one decision. ``base_seq`` is the state the client saw; a mismatch is reported, not lost."""
        return self.decide_many([(candidate_id, decision, base_seq)], reviewer, client=client)[0]

    def decide_many(self, items: Sequence[tuple[int, str, int | None]], reviewer: str, *,
                    client: str | None = None) -> list[DecisionResult]:
        """Append several decisions in one transaction (the grid page's "accept screen")."""
        reviewer = check_reviewer(reviewer)
        for _, decision, _ in items:
            if decision not in DECISIONS:
                raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
        out = []
        with self._conn(write=True) as con:
            for cid, decision, base_seq in items:
                row = con.execute("SELECT c.p, c.image, i.path FROM candidates c JOIN images i ON i.id = c.image "
                                  "WHERE c.id = ?", (cid,)).fetchone()
                if row is None:
                    raise KeyError(cid)
                if decision != "skip":
                    _record_seen(con, row["image"], Path(row["path"]), replace=True)
                prev = con.execute("SELECT decision, seq FROM events WHERE candidate = ? ORDER BY seq DESC LIMIT 1",
                                   (cid,)).fetchone()
                prev_seq = prev["seq"] if prev else 0
                cur = con.execute("INSERT INTO events (candidate, decision, reviewer, at, p, client) VALUES (?, ?, ?, ?, ?, ?)",
                                  (cid, decision, reviewer, now_iso(), row["p"], client))
                out.append(DecisionResult(int(cur.lastrowid or 0), cid, decision,
                                          conflict=base_seq is not None and base_seq != prev_seq,
                                          previous=prev["decision"] if prev else UNREVIEWED))
        return out

    def undo(self, reviewer: str, class_name: str | None = None, *, client: str | None = None) -> dict[str, Any] | None:
        """Revert ``reviewer``'s latest not-yet-reverted decision (in ``class_name`` if given) by a new event.

        The state goes back to what it was just before that decision. If a later decision on the same
        candidate still stands (another tab or reviewer), the state is left as is and the undo is logged
        as superseded. Returns None when there is nothing to undo.
        """
        reviewer = check_reviewer(reviewer)
        with self._conn(write=True) as con:
            sql = ("SELECT e.seq, e.candidate, e.decision FROM events e JOIN candidates c ON c.id = e.candidate "
                   "JOIN classes k ON k.id = c.class WHERE e.reviewer = ? AND e.reverts IS NULL "
                   "AND NOT EXISTS (SELECT 1 FROM events r WHERE r.reverts = e.seq) ")
            args: tuple[Any, ...] = (reviewer,)
            if class_name is not None:
                sql += "AND k.name = ? "
                args = (reviewer, class_name)
            target = con.execute(sql + "ORDER BY e.seq DESC LIMIT 1", args).fetchone()
            if target is None:
                return None
            cid = target["candidate"]
            # superseded: a later decision on this candidate still stands (one not itself undone)
            later = con.execute("SELECT 1 FROM events e WHERE e.candidate = ? AND e.seq > ? AND e.reverts IS NULL "
                                "AND NOT EXISTS (SELECT 1 FROM events r WHERE r.reverts = e.seq) LIMIT 1",
                                (cid, target["seq"])).fetchone()
            superseded = later is not None
            if superseded:
                restored = con.execute("SELECT decision FROM events WHERE candidate = ? ORDER BY seq DESC LIMIT 1",
                                       (cid,)).fetchone()["decision"]
            else:
                before = con.execute("SELECT decision FROM events WHERE candidate = ? AND seq < ? "
                                     "ORDER BY seq DESC LIMIT 1", (cid, target["seq"])).fetchone()
                restored = before["decision"] if before else UNREVIEWED
            p = con.execute("SELECT p FROM candidates WHERE id = ?", (cid,)).fetchone()["p"]
            cur = con.execute("INSERT INTO events (candidate, decision, reviewer, at, p, reverts, client) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?)", (cid, restored, reviewer, now_iso(), p, target["seq"], client))
            return {"seq": int(cur.lastrowid or 0), "candidate": cid, "undone": target["decision"],
                    "state": restored, "superseded": superseded}


def _open_error(path: Path, exc: sqlite3.DatabaseError) -> DataError:
    """Why SQLite could not read ``path``: read-only (the file, or the folder where it keeps ``-wal``/``-shm``
    beside a WAL database) is told apart from a file that is not a database at all."""
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return DataError(f"review database is read-only or in a read-only folder ({exc})", path=path,
                         fix="make the file and its folder writable (SQLite keeps <db>-wal and <db>-shm beside it), "
                             f"e.g. `chmod u+w {path} {path.parent}`, or copy the database to a writable folder")
    return DataError(f"not a review database ({exc})", path=path, fix="pass the .sqlite file `woodseg ood review` made")


def _record_seen(con: sqlite3.Connection, image: int, path: Path, *, replace: bool) -> None:
    """Store the file's SHA-256, size and mtime; re-hash only when size or mtime changed. A missing file is left out."""
    try:
        st = path.stat()
    except OSError:
        return
    row = con.execute("SELECT size, mtime_ns FROM seen WHERE image = ?", (image,)).fetchone()
    if row is not None and (not replace or (row["size"], row["mtime_ns"]) == (st.st_size, st.st_mtime_ns)):
        return
    try:
        digest = sha256_file(path)
    except OSError:
        return
    con.execute("INSERT OR REPLACE INTO seen (image, sha256, size, mtime_ns, at) VALUES (?, ?, ?, ?, ?)",
                (image, digest, st.st_size, st.st_mtime_ns, now_iso()))


def _resolve(root: Path, entry: str) -> Path:
    p = Path(entry)
    return p if p.is_absolute() else root / p


def _nan_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _flagged(row: sqlite3.Row, settings: ReviewSettings) -> bool:
    if settings.flag is None:
        return False
    v = row[settings.flag]
    return v is not None and v >= settings.flag_threshold


def _effective(own: str, rejected_in: list[str], reject_everywhere: bool) -> str:
    if own == "reject" or not (reject_everywhere and rejected_in):
        return own
    return ELSEWHERE


def _decided_elsewhere(con: sqlite3.Connection, class_name: str | None = None
                       ) -> tuple[dict[int, set[str]], dict[int, set[str]]]:
    """Per image id (of ``class_name``'s candidates, or all): classes it was rejected in, and kept in."""
    rejected: dict[int, set[str]] = {}
    kept: dict[int, set[str]] = {}
    sql = (f"SELECT c.image, k.name, e.decision FROM ({_CURRENT}) e JOIN candidates c ON c.id = e.candidate "
           "JOIN classes k ON k.id = c.class WHERE e.decision IN ('keep', 'reject')")
    args: tuple[Any, ...] = ()
    if class_name is not None:
        sql += (" AND c.image IN (SELECT c2.image FROM candidates c2 JOIN classes k2 ON k2.id = c2.class "
                "WHERE k2.name = ?)")
        args = (class_name,)
    for r in con.execute(sql, args):
        (rejected if r["decision"] == "reject" else kept).setdefault(r["image"], set()).add(r["name"])
    return rejected, kept


def _set_positions(con: sqlite3.Connection, settings: ReviewSettings) -> None:
    """Recompute each class's review order (NULL = hidden) with :func:`order_candidates`."""
    from woodseg.ood.candidates import Candidate

    rows = con.execute("SELECT c.id, c.class, i.entry, c.p, c.rank, c.compactness, c.stability "
                       "FROM candidates c JOIN images i ON i.id = c.image").fetchall()
    by_class: dict[int, list[tuple[int, Candidate]]] = {}
    for r in rows:
        cand = Candidate(r[2], str(r[1]), r[3], r[4], math.nan if r[5] is None else r[5], math.nan if r[6] is None else r[6])
        by_class.setdefault(r[1], []).append((r[0], cand))
    con.execute("UPDATE candidates SET position = NULL")
    for items in by_class.values():
        ids = {id(c): cid for cid, c in items}
        ordered = order_candidates([c for _, c in items], settings.order, settings.flag, settings.flag_threshold)
        con.executemany("UPDATE candidates SET position = ? WHERE id = ?",
                        [(pos, ids[id(c)]) for pos, c in enumerate(ordered)])

