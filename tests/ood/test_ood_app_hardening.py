"""Review app hardening: any class name, O(1) decisions, body cap, headers on 500, full disk, per-port cookie."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from ood_helpers import synthetic_ranked

from woodseg.ood.review.app import MAX_BODY, create_app
from woodseg.ood.review.store import ReviewSettings, ReviewStore

BASE = "http://127.0.0.1:8765"
SLASHED = ("cat", "a/b", "x/../y")


@pytest.fixture()
def store(tmp_path: Path) -> ReviewStore:
    ranked = synthetic_ranked(tmp_path / "images", tmp_path / "ranked")
    return ReviewStore.create(tmp_path / "review.sqlite", ranked, ReviewSettings(target_n=2))


@pytest.fixture()
def client(store: ReviewStore) -> TestClient:
    return TestClient(create_app(store, reviewer="ann"), base_url=BASE, raise_server_exceptions=False)


def _decide(http: TestClient, cid: int, decision: str = "keep", who: str = "ann") -> dict:
    r = http.post("/api/decisions", json={"candidate": cid, "decision": decision, "reviewer": who})
    assert r.status_code == 200, r.text
    return r.json()


def test_class_names_with_a_slash_are_reviewable_everywhere(tmp_path: Path):
    ranked = synthetic_ranked(tmp_path / "images", tmp_path / "ranked", classes=SLASHED)
    store = ReviewStore.create(tmp_path / "review.sqlite", ranked, ReviewSettings(target_n=1))
    http = TestClient(create_app(store), base_url=BASE)
    index = http.get("/").text
    for name, enc in (("a/b", "a%2Fb"), ("x/../y", "x%2F..%2Fy")):
        assert f'href="/review/{enc}"' in index and f'href="/grid/{enc}"' in index
        page = http.get(f"/review/{enc}")
        assert page.status_code == 200 and f"<h1>{name}</h1>" in page.text
        grid = http.get(f"/grid/{enc}?page=0&size=2")
        assert grid.status_code == 200 and f'href="/grid/{enc}?page=1' in grid.text
        cands = http.get(f"/api/classes/{enc}/candidates")
        assert cands.status_code == 200
        first = cands.json()["candidates"][0]
        assert first["class_name"] == name
        assert _decide(http, first["id"])["progress"]["name"] == name
        assert http.get("/api/pace", params={"reviewer": "reviewer", "class_name": name}).status_code == 200
        undo = http.post("/api/undo", json={"reviewer": "ann", "class_name": name})
        assert undo.status_code == 200 and undo.json()["undone"] == "keep"
        assert http.get(f"/cam/{first['id']}").status_code == 404  # no checkpoint: a 404 that says so
    assert http.get("/review/a%2Fc").status_code == 404


def _count_connections(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    opened = [0]
    real = ReviewStore._connect

    def counting(self: ReviewStore) -> sqlite3.Connection:
        opened[0] += 1
        return real(self)

    monkeypatch.setattr(ReviewStore, "_connect", counting)
    return opened


def test_a_request_opens_one_connection(client: TestClient, store: ReviewStore, monkeypatch: pytest.MonkeyPatch):
    cid = store.states("dog")[0].id
    opened = _count_connections(monkeypatch)
    _decide(client, cid)
    assert opened[0] == 1
    opened[0] = 0
    assert client.get("/review/dog").status_code == 200
    assert opened[0] == 1


def _decision_cost(store: ReviewStore, cid: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """SQLite virtual-machine steps one decision request takes (deterministic, unlike a timing)."""
    steps = [0]
    real = ReviewStore._connect

    def counting(self: ReviewStore) -> sqlite3.Connection:
        con = real(self)

        def tick() -> int:
            steps[0] += 1
            return 0

        con.set_progress_handler(tick, 100)
        return con

    with monkeypatch.context() as m:
        m.setattr(ReviewStore, "_connect", counting)
        _decide(TestClient(create_app(store), base_url=BASE), cid, "skip")
    return steps[0]


def test_decision_cost_does_not_grow_with_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    ranked = synthetic_ranked(tmp_path / "images", tmp_path / "ranked")
    short = ReviewStore.create(tmp_path / "short.sqlite", ranked)
    long = ReviewStore.create(tmp_path / "long.sqlite", ranked)
    ids = [s.id for s in short.states()]
    for st in (short, long):
        st.decide_many([(i, "skip", None) for i in ids], "ann")
    for _ in range(4000 // len(ids)):  # ~4,000 more events on the same candidates
        long.decide_many([(i, "skip", None) for i in ids], "ann")
    assert len(long.events()) > 20 * len(short.events())
    cost_short = _decision_cost(short, ids[0], monkeypatch)
    cost_long = _decision_cost(long, ids[0], monkeypatch)
    assert cost_long < 1.2 * cost_short, (cost_short, cost_long)


def test_request_body_is_capped(client: TestClient, store: ReviewStore):
    before = len(store.events())
    big = b'{"candidate": 1, "decision": "keep", "reviewer": "ann", "client": "' + b"x" * MAX_BODY + b'"}'
    r = client.post("/api/decisions", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert len(store.events()) == before


def test_a_500_carries_the_security_headers(client: TestClient, store: ReviewStore, monkeypatch: pytest.MonkeyPatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(store, "progress", broken)
    r = client.get("/api/progress")
    assert r.status_code == 500 and "boom" not in r.text
    for h in ("X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy", "Referrer-Policy"):
        assert h in r.headers, h


def test_a_full_disk_says_so_and_loses_no_saved_decision(client: TestClient, store: ReviewStore,
                                                         monkeypatch: pytest.MonkeyPatch):
    cands = store.states("dog")
    _decide(client, cands[0].id, "reject")
    real = ReviewStore._connect

    def full_disk(self: ReviewStore) -> sqlite3.Connection:
        con = real(self)
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        con.execute(f"PRAGMA max_page_count = {pages}")  # SQLite answers SQLITE_FULL past this size
        return con

    with monkeypatch.context() as m:
        m.setattr(ReviewStore, "_connect", full_disk)
        c = cands[1]
        for k in range(1000):  # decide until the log needs one page more than the "disk" holds
            r = client.post("/api/decisions", json={"candidate": c.id, "decision": ("keep", "skip")[k % 2],
                                                    "reviewer": "ann"})
            if r.status_code != 200:
                break
        assert r.status_code == 507, r.text
        assert "disk" in r.json()["detail"] and "full" in r.json()["detail"] and "NOT saved" in r.json()["detail"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    states = {s.id: s.own for s in store.states("dog")}
    assert states[cands[0].id] == "reject"  # what was saved before is intact
    assert states[c.id] == ("keep", "skip")[(k - 1) % 2]  # the last acknowledged decision stands
    assert _decide(client, c.id)["state"] == "keep"  # space freed: the same key press works


def test_token_cookie_is_named_per_port(store: ReviewStore):
    token = "s3cret-token-123"
    a = TestClient(create_app(store, token=token, port=9001), base_url=BASE)
    r = a.get(f"/?token={token}", follow_redirects=False)
    assert r.status_code == 303 and "woodseg_token_9001=" in r.headers["set-cookie"]
    assert a.get("/").status_code == 200  # the cookie now authorises this port's app
    b = TestClient(create_app(store, token=token, port=9002), base_url=BASE)
    b.cookies.set("woodseg_token_9001", token)
    assert b.get("/").status_code == 401  # another port's cookie is not this app's


def test_a_changed_kept_image_blocks_the_download(client: TestClient, store: ReviewStore):
    s = store.states("dog")[1]
    assert client.get(f"/image/{s.image}").status_code == 200  # shown: its hash is recorded
    _decide(client, s.id, "keep")
    assert client.get("/export/ood_list.txt").text == f"{s.entry}\n"
    path = store.image_path(s.image)
    path.write_bytes(path.read_bytes() + b"tampered")
    r = client.get("/export/ood_list.txt")
    assert r.status_code == 409 and "changed on disk after they were reviewed" in r.json()["detail"]
    assert s.entry in r.json()["detail"]
    _decide(client, s.id, "keep")  # looked at again and kept: the new file is what was reviewed
    assert client.get("/export/ood_list.txt").status_code == 200


def test_a_full_disk_during_export_says_so(client: TestClient, store: ReviewStore, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path):
    import errno

    import woodseg.ood.export as export_mod

    _decide(client, store.states("dog")[1].id, "keep")

    def no_space(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(export_mod, "atomic_write_text", no_space)
    r = client.post("/api/export", json={})
    assert r.status_code == 507 and "disk is full: writing the export failed" in r.json()["detail"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert len(store.events()) == 1
