"""The review store: append-only decisions, undo, reject-everywhere, progress, resume, concurrency."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from ood_helpers import synthetic_ranked

from woodseg.errors import ConfigError, DataError
from woodseg.ood.review.store import ELSEWHERE, ReviewSettings, ReviewStore


@pytest.fixture()
def ranked(tmp_path: Path):
    return synthetic_ranked(tmp_path / "images", tmp_path / "ranked")


@pytest.fixture()
def store(tmp_path: Path, ranked) -> ReviewStore:
    return ReviewStore.create(tmp_path / "review.sqlite", ranked, ReviewSettings(target_n=2))


def _by_entry(store: ReviewStore, cls: str) -> dict[str, object]:
    return {s.entry: s for s in store.states(cls)}


def test_create_lists_candidates_in_p_order(store: ReviewStore):
    assert store.class_names() == ["cat", "dog", "train"]
    cat = store.states("cat")
    assert [s.entry for s in cat] == ["img000.jpg", "img003.jpg", "img006.jpg"]
    assert [s.p for s in cat] == sorted((s.p for s in cat), reverse=True)
    assert all(s.own == "unreviewed" and s.state == "unreviewed" and s.seq == 0 for s in cat)
    assert store.image_path(cat[0].image).name == "img000.jpg" and store.image_path(999) is None


def test_decisions_progress_r_and_expected_cost(store: ReviewStore):
    dog = store.states("dog")  # img000, img001, img004, img007
    store.decide(dog[0].id, "reject", "ann")
    store.decide(dog[1].id, "keep", "ann")
    store.decide(dog[2].id, "skip", "ann")
    p = store.progress()["dog"]
    assert (p.candidates, p.reviewed, p.kept, p.rejected, p.skipped, p.remaining) == (4, 2, 1, 1, 1, 1)
    assert p.r == pytest.approx(0.5) and p.expected_cost == pytest.approx(4.0) and p.expected_remaining == pytest.approx(2.0)
    assert not p.reached
    store.decide(dog[3].id, "keep", "ann")
    p = store.progress()["dog"]
    assert p.reached and p.kept == 2
    fresh = store.progress()["train"]
    assert fresh.r is None and fresh.expected_cost is None and not fresh.reached


def test_every_decision_is_logged_with_who_when_and_p(store: ReviewStore):
    s = store.states("cat")[1]
    store.decide(s.id, "keep", "ann", client="tab-1")
    store.decide(s.id, "reject", "bob")
    ev = store.events()
    assert [(e["entry"], e["class_name"], e["decision"], e["reviewer"]) for e in ev] == [
        ("img003.jpg", "cat", "keep", "ann"), ("img003.jpg", "cat", "reject", "bob")]
    assert ev[0]["p"] == pytest.approx(s.p) and ev[0]["at"].endswith("+00:00") and ev[0]["client"] == "tab-1"
    assert store.events(after=ev[0]["seq"])[0]["reviewer"] == "bob"


def test_events_cannot_be_updated_or_deleted(store: ReviewStore):
    s = store.states("cat")[0]
    store.decide(s.id, "keep", "ann")
    con = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE events SET decision = 'reject'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM events")
    con.close()


def test_undo_is_a_new_event_and_walks_back(store: ReviewStore):
    a, b = store.states("cat")[:2]
    store.decide(a.id, "keep", "ann")
    store.decide(a.id, "reject", "ann")
    store.decide(b.id, "skip", "ann")
    assert store.undo("ann")["candidate"] == b.id
    assert store.candidate(b.id).state == "unreviewed"
    u = store.undo("ann")
    assert (u["candidate"], u["undone"], u["state"]) == (a.id, "reject", "keep")
    assert store.candidate(a.id).state == "keep"
    assert store.undo("ann")["state"] == "unreviewed"
    assert store.undo("ann") is None
    assert len(store.events()) == 6 and sum(e["reverts"] is not None for e in store.events()) == 3


def test_undo_is_per_reviewer_and_per_class_and_never_clobbers_others(store: ReviewStore):
    cat = store.states("cat")[1]
    dog = store.states("dog")[1]
    store.decide(cat.id, "keep", "ann")
    store.decide(dog.id, "keep", "ann")
    assert store.undo("ann", "cat")["candidate"] == cat.id  # the dog decision is later but in another class
    store.decide(cat.id, "reject", "ann")
    store.decide(cat.id, "keep", "bob")  # bob decides after ann
    u = store.undo("ann", "cat")
    assert u["superseded"] and u["state"] == "keep"
    assert store.candidate(cat.id).state == "keep" and store.candidate(cat.id).seq == u["seq"]
    assert store.undo("bob")["state"] == "reject"


def test_reject_applies_to_the_image_everywhere_by_default(store: ReviewStore):
    cat0 = store.states("cat")[0]  # img000 is a candidate of every class
    store.decide(cat0.id, "reject", "ann")
    dog = _by_entry(store, "dog")["img000.jpg"]
    assert dog.state == ELSEWHERE and dog.rejected_in == ["cat"] and dog.own == "unreviewed"
    p = store.progress()["dog"]
    assert p.auto_rejected == 1 and p.reviewed == 0 and p.remaining == 3
    train = _by_entry(store, "train")["img000.jpg"]
    store.decide(train.id, "keep", "ann")  # a keep elsewhere cannot override the reject
    assert store.candidate(train.id).state == ELSEWHERE
    assert store.progress()["train"].overridden == 1 and store.progress()["train"].kept == 0
    store.undo("ann")
    store.undo("ann")  # the cat reject is undone: the image is open again everywhere
    assert _by_entry(store, "dog")["img000.jpg"].state == "unreviewed"


def test_per_class_rejects_when_switched_off(store: ReviewStore):
    store.update_settings(ReviewSettings(target_n=2, reject_everywhere=False))
    store.decide(store.states("cat")[0].id, "reject", "ann")
    dog = _by_entry(store, "dog")["img000.jpg"]
    assert dog.state == "unreviewed" and dog.rejected_in == ["cat"]


def test_restart_resumes_exactly(tmp_path: Path, store: ReviewStore, ranked):
    s = store.states("train")
    store.decide(s[0].id, "keep", "ann")
    store.decide(s[1].id, "reject", "ann")
    before = [(x.id, x.state, x.seq) for x in store.states()]
    again = ReviewStore.open_or_create(store.path, ranked)
    assert [(x.id, x.state, x.seq) for x in again.states()] == before
    assert again.progress()["train"].reviewed == 2


def test_concurrent_writers_lose_no_decision(store: ReviewStore):
    ids = [s.id for s in store.states()]
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            other = ReviewStore(store.path)  # its own connections, like a second server process
            for k in range(20):
                other.decide(ids[k % len(ids)], "keep" if k % 2 else "reject", name, base_seq=0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"tab{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ev = store.events()
    assert len(ev) == 80 and len({e["seq"] for e in ev}) == 80
    assert {e["reviewer"] for e in ev} == {"tab0", "tab1", "tab2", "tab3"}


def test_conflicts_are_reported_not_lost(store: ReviewStore):
    s = store.states("cat")[1]
    first = store.decide(s.id, "keep", "tab-a", base_seq=0)
    second = store.decide(s.id, "reject", "tab-b", base_seq=0)  # tab b had not seen tab a's decision
    assert not first.conflict and second.conflict and second.previous == "keep"
    assert store.candidate(s.id).state == "reject" and len(store.events()) == 2


def test_settings_reorder_and_hide(store: ReviewStore):
    # synthetic compactness: odd image numbers 0.9 (flagged), even 0.1
    store.update_settings(ReviewSettings(target_n=2, order="demote", flag="compactness", flag_threshold=0.5))
    assert [s.entry for s in store.states("dog")] == ["img000.jpg", "img004.jpg", "img001.jpg", "img007.jpg"]
    assert [s.flagged for s in store.states("dog")] == [False, False, True, True]
    store.update_settings(ReviewSettings(target_n=2, order="hide", flag="compactness"))
    assert [s.entry for s in store.states("dog", include_hidden=False)] == ["img000.jpg", "img004.jpg"]
    assert store.progress()["dog"].hidden == 2
    with pytest.raises(ConfigError, match="needs a flag"):
        store.update_settings(ReviewSettings(order="demote"))


def test_bad_input_and_refusals(tmp_path: Path, store: ReviewStore, ranked):
    s = store.states("cat")[0]
    with pytest.raises(ValueError, match="decision must be"):
        store.decide(s.id, "maybe", "ann")
    with pytest.raises(ValueError, match="reviewer name"):
        store.decide(s.id, "keep", "")
    with pytest.raises(ValueError, match="reviewer name"):
        store.decide(s.id, "keep", "a\nb")
    with pytest.raises(KeyError):
        store.decide(10_000, "keep", "ann")
    with pytest.raises(KeyError):  # a batch with one bad item writes nothing
        store.decide_many([(s.id, "keep", None), (10_000, "keep", None)], "ann")
    assert store.events() == []
    with pytest.raises(DataError, match="already exists"):
        ReviewStore.create(store.path, ranked)
    other = synthetic_ranked(tmp_path / "images2", tmp_path / "ranked2", seed=3)
    with pytest.raises(DataError, match="different ranking"):
        ReviewStore.open_or_create(store.path, other)
    with pytest.raises(DataError, match="does not exist"):
        ReviewStore(tmp_path / "none.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 10)
    with pytest.raises(DataError, match="not a review database"):
        ReviewStore(junk)
    with pytest.raises(ConfigError, match="target n"):
        ReviewSettings(target_n=0).check()


def _as_unprivileged(code: str) -> list[str]:
    """A Python command that file permissions apply to: root drops its capabilities (setpriv), others run as is."""
    import os
    import shutil
    import sys

    cmd = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: permissions cannot be made to apply")
        cmd = ["setpriv", "--bounding-set", "-all", "--inh-caps", "-all", "--", *cmd]
    return cmd


def test_read_only_database_is_called_read_only(store: ReviewStore):
    import os
    import subprocess

    db = store.path
    for p in db.parent.glob(f"{db.name}-*"):  # no journal left from creation: SQLite must make one
        p.unlink()
    db.chmod(0o444)
    db.parent.chmod(0o555)
    try:
        import woodseg

        src = str(Path(woodseg.__file__).resolve().parents[1])  # the woodseg under test, in the child too
        code = ("from woodseg.ood.review.store import ReviewStore\n"
                f"try:\n    ReviewStore({str(db)!r})\nexcept Exception as exc:\n    print(exc)\n")
        out = subprocess.run(_as_unprivileged(code), capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": src}).stdout
    finally:
        db.parent.chmod(0o755)
        db.chmod(0o644)
    assert "read-only" in out and "not a review database" not in out, out
    assert "chmod u+w" in out


def test_database_path_that_is_a_folder(tmp_path: Path):
    (tmp_path / "review.sqlite").mkdir()
    with pytest.raises(DataError, match="review database is a folder, not a file"):
        ReviewStore(tmp_path / "review.sqlite")
    with pytest.raises(DataError, match="review database is a folder, not a file"):
        ReviewStore.open_or_create(tmp_path / "review.sqlite")


def test_current_table_follows_the_log_through_decisions_and_undos(store: ReviewStore):
    ids = [s.id for s in store.states("dog")]
    store.decide(ids[0], "keep", "ann")
    store.decide(ids[0], "reject", "bob")
    store.decide_many([(ids[1], "skip", None), (ids[2], "keep", None)], "ann")
    store.undo("ann")
    with sqlite3.connect(store.path) as con:
        current = dict(con.execute("SELECT candidate, decision FROM current"))
        last = dict(con.execute("SELECT candidate, decision FROM events e WHERE seq = "
                                "(SELECT MAX(seq) FROM events WHERE candidate = e.candidate)"))
    assert current == last == {ids[0]: "reject", ids[1]: "skip", ids[2]: "unreviewed"}


def test_a_database_made_before_the_current_table_is_upgraded(store: ReviewStore):
    ids = [s.id for s in store.states("cat")]
    store.decide(ids[0], "keep", "ann")
    store.decide(ids[0], "reject", "ann")
    store.decide(ids[1], "keep", "ann")
    with sqlite3.connect(store.path) as con:  # what an older woodseg wrote: no current/seen tables
        con.executescript("DROP TRIGGER events_current; DROP TABLE current; DROP TABLE seen; "
                          "DROP INDEX events_by_reverts;")
    reopened = ReviewStore(store.path)
    assert {s.id: s.own for s in reopened.states("cat")}[ids[0]] == "reject"
    assert reopened.progress("cat")["cat"].kept == 1
    reopened.decide(ids[1], "reject", "ann")
    assert {s.id: s.own for s in reopened.states("cat")}[ids[1]] == "reject"


def test_pace_counts_looks_per_minute_and_ignores_breaks(store: ReviewStore, monkeypatch: pytest.MonkeyPatch):
    from datetime import UTC, datetime, timedelta

    import woodseg.ood.review.store as store_mod

    t0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    times = [t0] + [t0 + timedelta(hours=1, seconds=6 * k) for k in range(11)]  # a break, then 1 look / 6 s
    clock = iter(times)
    monkeypatch.setattr(store_mod, "now_iso", lambda: next(clock).isoformat(timespec="milliseconds"))
    assert store.pace("ann")["looks_per_minute"] is None
    ids = [s.id for s in store.states()]
    for k in range(len(times)):
        store.decide(ids[k % len(ids)], "skip", "ann")
    pace = store.pace("ann")
    assert pace["looks"] == 11 and pace["minutes"] == 1.0 and pace["looks_per_minute"] == 10.0
    assert store.pace("bob")["looks_per_minute"] is None

