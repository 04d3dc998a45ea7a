"""The review app through its HTTP API: pages, decisions, undo, grid batches, export, resume, concurrency."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from ood_helpers import synthetic_ranked
from PIL import Image

from woodseg.data.ood_list import read_ood_list
from woodseg.ood.review.app import create_app
from woodseg.ood.review.store import ReviewSettings, ReviewStore

BASE = "http://127.0.0.1:8765"


@pytest.fixture()
def store(tmp_path: Path) -> ReviewStore:
    ranked = synthetic_ranked(tmp_path / "images", tmp_path / "ranked")
    return ReviewStore.create(tmp_path / "review.sqlite", ranked, ReviewSettings(target_n=2))


@pytest.fixture()
def client(store: ReviewStore) -> TestClient:
    return TestClient(create_app(store, reviewer="ann"), base_url=BASE)


def _cands(client: TestClient, cls: str) -> list[dict]:
    r = client.get(f"/api/classes/{cls}/candidates")
    assert r.status_code == 200
    return r.json()["candidates"]


def _decide(http: TestClient, cid: int, decision: str, who: str = "ann", **extra) -> dict:
    r = http.post("/api/decisions", json={"candidate": cid, "decision": decision, "reviewer": who, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def test_pages_render_with_candidates_in_p_order(client: TestClient):
    index = client.get("/")
    assert index.status_code == 200 and "cat" in index.text and "n/(1−r)" in index.text
    page = client.get("/review/cat")
    assert page.status_code == 200 and 'id="page-data"' in page.text and "/static/review.js" in page.text
    assert "img000.jpg" in page.text
    grid = client.get("/grid/dog?page=0&size=2")
    assert grid.status_code == 200 and "screen 1 / 2" in grid.text
    assert client.get("/help").status_code == 200 and "<kbd>k</kbd>" in client.get("/help").text
    cands = _cands(client, "cat")
    assert [c["entry"] for c in cands] == ["img000.jpg", "img003.jpg", "img006.jpg"]
    assert client.get("/static/review.js").status_code == 200


def test_image_is_served_by_id_as_jpeg(client: TestClient, store: ReviewStore):
    c = _cands(client, "cat")[0]
    r = client.get(f"/image/{c['image']}?max=32")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    import io

    im = Image.open(io.BytesIO(r.content))
    assert max(im.size) <= 32
    assert client.get("/image/9999").status_code == 404


def test_decisions_progress_and_target_signal(client: TestClient):
    cat = _cands(client, "cat")
    res = _decide(client, cat[1]["id"], "keep", base_seq=0, client="tab-1")
    assert res["state"] == "keep" and not res["conflict"] and res["progress"]["kept"] == 1
    res = _decide(client, cat[0]["id"], "reject")
    assert res["progress"]["r"] == pytest.approx(0.5) and res["progress"]["expected_cost"] == pytest.approx(4.0)
    res = _decide(client, cat[2]["id"], "keep")
    assert res["progress"]["reached"] is True
    prog = {p["name"]: p for p in client.get("/api/progress").json()["classes"]}
    assert prog["cat"]["reached"] and prog["dog"]["auto_rejected"] == 1  # img000 rejected under cat
    assert "target reached" in client.get("/").text
    ev = client.get("/api/events").json()["events"]
    assert [(e["decision"], e["reviewer"]) for e in ev] == [("keep", "ann"), ("reject", "ann"), ("keep", "ann")]
    assert client.get(f"/api/candidates/{cat[1]['id']}").json()["state"] == "keep"


def test_undo_through_the_api(client: TestClient):
    cat = _cands(client, "cat")
    _decide(client, cat[1]["id"], "keep")
    _decide(client, cat[2]["id"], "reject")
    r = client.post("/api/undo", json={"reviewer": "ann", "class_name": "cat"}).json()
    assert (r["candidate"], r["undone"], r["state"]) == (cat[2]["id"], "reject", "unreviewed")
    assert r["candidate_state"]["state"] == "unreviewed" and r["progress"]["reviewed"] == 1
    assert client.post("/api/undo", json={"reviewer": "ann"}).json()["candidate"] == cat[1]["id"]
    assert client.post("/api/undo", json={"reviewer": "ann"}).json() == {"undone": None}
    assert len(client.get("/api/events").json()["events"]) == 4  # nothing deleted


def test_grid_batch_accepts_a_screen(client: TestClient):
    dog = _cands(client, "dog")
    items = [{"candidate": c["id"], "decision": "keep", "base_seq": c["seq"]} for c in dog[:3]]
    items[1]["decision"] = "reject"
    r = client.post("/api/decisions/batch", json={"reviewer": "ann", "items": items})
    assert r.status_code == 200 and [x["decision"] for x in r.json()["results"]] == ["keep", "reject", "keep"]
    prog = {p["name"]: p for p in r.json()["progress"]}
    assert prog["dog"]["kept"] == 2 and prog["dog"]["rejected"] == 1
    bad = client.post("/api/decisions/batch", json={"reviewer": "ann", "items": [
        {"candidate": dog[3]["id"], "decision": "keep"}, {"candidate": 99999, "decision": "keep"}]})
    assert bad.status_code == 404
    assert _cands(client, "dog")[3]["state"] == "unreviewed"  # all or nothing


def test_export_endpoints(client: TestClient, tmp_path: Path, store: ReviewStore):
    cat = _cands(client, "cat")
    _decide(client, cat[1]["id"], "keep")
    _decide(client, cat[2]["id"], "keep")
    text = client.get("/export/ood_list.txt").text
    assert text == "img003.jpg\nimg006.jpg\n"
    manifest = client.get("/export/manifest.csv")
    assert manifest.headers["content-type"].startswith("text/csv")
    assert manifest.text.splitlines()[0].startswith("path,image_id,class,p,rank,decision")
    assert len(client.get("/export/manifest.json").json()) == 2
    r = client.post("/api/export", json={})
    assert r.status_code == 200 and r.json()["num_images"] == 2
    written = store.path.parent / "export" / "ood_list.txt"
    assert read_ood_list(written, tmp_path / "images").ids == ["img003.jpg", "img006.jpg"]


def test_restarted_server_resumes(store: ReviewStore):
    first = TestClient(create_app(store), base_url=BASE)
    cat = _cands(first, "cat")
    _decide(first, cat[0]["id"], "skip")
    _decide(first, cat[1]["id"], "keep")
    second = TestClient(create_app(ReviewStore(store.path)), base_url=BASE)  # a new process on the same file
    again = _cands(second, "cat")
    assert [c["state"] for c in again] == ["skip", "keep", "unreviewed"]
    assert "img000.jpg" in second.get("/review/cat").text


def test_two_tabs_at_once_lose_no_decision(store: ReviewStore):
    tabs = [TestClient(create_app(store), base_url=BASE) for _ in range(2)]
    ids = [c["id"] for c in _cands(tabs[0], "dog")] + [c["id"] for c in _cands(tabs[0], "train")]
    errors: list[str] = []

    def run(tab: TestClient, name: str) -> None:
        for k, cid in enumerate(ids * 3):
            r = tab.post("/api/decisions", json={"candidate": cid, "decision": ("keep", "reject", "skip")[k % 3],
                                                 "reviewer": name, "base_seq": 0})
            if r.status_code != 200:
                errors.append(r.text)

    threads = [threading.Thread(target=run, args=(t, f"tab{i}")) for i, t in enumerate(tabs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    events = tabs[1].get("/api/events?limit=10000").json()["events"]
    assert len(events) == 2 * 3 * len(ids)
    assert sorted(e["seq"] for e in events) == list(range(1, len(events) + 1))
    # a stale base_seq is reported as a conflict, yet the decision is stored
    r = tabs[0].post("/api/decisions", json={"candidate": ids[0], "decision": "keep", "reviewer": "tab0", "base_seq": 0})
    assert r.json()["conflict"] is True and tabs[1].get(f"/api/candidates/{ids[0]}").json()["own"] == "keep"
