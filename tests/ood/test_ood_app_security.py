"""Review app safety: loopback by default, tokens elsewhere, pool-only images, 4xx for bad requests."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from ood_helpers import synthetic_ranked

from woodseg.errors import ConfigError
from woodseg.ood.review.app import check_bind, create_app, host_name, is_loopback
from woodseg.ood.review.store import ReviewSettings, ReviewStore

BASE = "http://127.0.0.1:8765"
TOKEN = "s3cret-token-123"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ReviewStore:
    """Shared by the module: these tests only read, or write decisions nothing here counts."""
    tmp_path = tmp_path_factory.mktemp("security")
    ranked = synthetic_ranked(tmp_path / "images", tmp_path / "ranked")
    (tmp_path / "secret.txt").write_text("do not serve me")
    return ReviewStore.create(tmp_path / "review.sqlite", ranked, ReviewSettings(target_n=2))


@pytest.fixture(scope="module")
def client(store: ReviewStore) -> TestClient:
    return TestClient(create_app(store), base_url=BASE, raise_server_exceptions=False)


def _no_traceback(r) -> None:
    assert "Traceback" not in r.text and 'File "' not in r.text


@pytest.mark.parametrize("path", [
    "/image/../../secret.txt", "/image/..%2F..%2Fsecret.txt", "/image/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/image/-1", "/image/0", "/image/1.5", "/image/99999999999999999999999999", "/image/1%00",
    "/static/../store.py", "/static/..%2Fstore.py", "/static/%2e%2e/app.py", "/static//etc/passwd",
    "/review/..%2F..%2Fsecret.txt", "/grid/%2e%2e", "/export/../review.sqlite", "/review.sqlite",
])
def test_path_traversal_attempts_get_4xx(client: TestClient, path: str):
    r = client.get(path)
    assert 400 <= r.status_code < 500, (path, r.status_code)
    assert "do not serve me" not in r.text and "SQLite format" not in r.text
    _no_traceback(r)


def test_only_pool_images_are_served(client: TestClient, store: ReviewStore):
    ids = {s.image for s in store.states()}
    assert all(client.get(f"/image/{i}").status_code == 200 for i in ids)
    assert client.get(f"/image/{max(ids) + 1}").status_code == 404


@pytest.mark.parametrize("body,status", [
    ({"candidate": 1, "decision": "maybe", "reviewer": "ann"}, 422),
    ({"candidate": "one", "decision": "keep", "reviewer": "ann"}, 422),
    ({"candidate": 1, "decision": "keep"}, 422),
    ({"candidate": 1, "decision": "keep", "reviewer": ""}, 422),
    ({"candidate": 1, "decision": "keep", "reviewer": "a" * 65}, 422),
    ({"candidate": 1, "decision": "keep", "reviewer": "ann\u0000"}, 422),
    ({"candidate": 1, "decision": "keep", "reviewer": "ann", "extra": 1}, 422),
    ({"candidate": 0, "decision": "keep", "reviewer": "ann"}, 422),
    ({"candidate": 10**40, "decision": "keep", "reviewer": "ann"}, 422),
    ({"candidate": 1, "decision": "keep", "reviewer": "ann", "base_seq": -5}, 422),
    ({"candidate": 1, "decision": "keep", "reviewer": "ann", "client": "<script>"}, 422),
    ({"candidate": 424242, "decision": "keep", "reviewer": "ann"}, 404),
    ([1, 2, 3], 422),
    ("keep", 422),
    (None, 415),  # no body at all: not JSON
])
def test_malformed_decisions_get_4xx(client: TestClient, body, status):
    r = client.post("/api/decisions", json=body)
    assert r.status_code == status, r.text
    _no_traceback(r)


@pytest.mark.parametrize("raw,ctype,status", [
    (b"{not json", "application/json", 422),
    (b"\xff\xfe\x00", "application/json", 400),
    (b'{"candidate": 1, "decision": "keep", "reviewer": "ann"}', "text/plain", 415),
    (b"candidate=1&decision=keep&reviewer=ann", "application/x-www-form-urlencoded", 415),
    (b'{"candidate": 1, "decision": "keep", "reviewer": "ann"}', None, 415),
])
def test_non_json_bodies_get_4xx(client: TestClient, raw: bytes, ctype: str | None, status: int):
    headers = {"content-type": ctype} if ctype else {}
    r = client.post("/api/decisions", content=raw, headers=headers)
    assert r.status_code == status and "detail" in r.json()
    _no_traceback(r)


def test_batch_and_undo_validation(client: TestClient):
    assert client.post("/api/decisions/batch", json={"reviewer": "ann", "items": []}).status_code == 422
    many = [{"candidate": 1, "decision": "keep"}] * 501
    assert client.post("/api/decisions/batch", json={"reviewer": "ann", "items": many}).status_code == 422
    assert client.post("/api/undo", json={"reviewer": "ann", "class_name": "nope"}).status_code == 404
    assert client.post("/api/undo", json={}).status_code == 422
    assert client.get("/api/events?after=-1").status_code == 422
    assert client.get("/api/events?limit=abc").status_code == 422
    assert client.get("/grid/cat?page=-1").status_code == 422
    assert client.get("/api/candidates/abc").status_code == 422
    assert client.get("/api/candidates/999999999999999999999999").status_code == 404
    assert client.get("/review/unknown-class").status_code == 404
    assert client.get("/api/classes/unknown/candidates").status_code == 404


def test_cross_site_posts_and_foreign_hosts_are_refused(client: TestClient, store: ReviewStore):
    body = {"candidate": 1, "decision": "keep", "reviewer": "ann"}
    r = client.post("/api/decisions", json=body, headers={"origin": "http://evil.example"})
    assert r.status_code == 403
    assert client.post("/api/decisions", json=body, headers={"origin": BASE}).status_code == 200
    rebinding = TestClient(create_app(store), base_url="http://evil.example:8765")
    assert rebinding.get("/").status_code == 400  # DNS rebinding: a loopback server answers loopback names only
    assert TestClient(create_app(store), base_url="http://localhost:8765").get("/").status_code == 200
    assert TestClient(create_app(store), base_url="http://[::1]:8765").get("/").status_code == 200


def test_non_loopback_bind_requires_a_token():
    with pytest.raises(ConfigError, match="without a token") as exc:
        check_bind("0.0.0.0", None)
    assert "--token" in str(exc.value)
    with pytest.raises(ConfigError, match="without a token"):
        check_bind("192.168.1.20", "")
    with pytest.raises(ConfigError, match="too short"):
        check_bind("0.0.0.0", "abc")
    check_bind("0.0.0.0", TOKEN)
    check_bind("127.0.0.1", None)
    check_bind("localhost", None)
    check_bind("::1", None)
    assert is_loopback("127.0.0.5") and not is_loopback("10.0.0.1") and not is_loopback("example.com")
    assert host_name("[::1]:8000") == "::1" and host_name("localhost:80") == "localhost" and host_name("::1") == "::1"


def test_token_is_checked_on_every_request(store: ReviewStore):
    app = create_app(store, token=TOKEN, loopback_only_hosts=False)
    anon = TestClient(app, base_url="http://10.1.2.3:8765", follow_redirects=False)
    for path in ("/", "/review/cat", "/api/progress", "/image/1", "/export/ood_list.txt", "/static/review.js"):
        r = anon.get(path)
        assert r.status_code == 401, path
    assert anon.post("/api/decisions", json={"candidate": 1, "decision": "keep", "reviewer": "x"}).status_code == 401
    assert anon.get("/?token=wrong-token-xyz").status_code == 401
    assert anon.get("/", headers={"x-woodseg-token": "wrong-token-xyz"}).status_code == 401
    # once via the query string: redirected without it, with a cookie for the next requests
    r = anon.get("/review/cat?token=" + TOKEN + "&x=1")
    assert r.status_code == 303 and r.headers["location"] == "/review/cat?x=1"
    assert "woodseg_token" in r.headers["set-cookie"] and "httponly" in r.headers["set-cookie"].lower()
    assert anon.get("/api/progress").status_code == 200  # the cookie now rides along
    fresh = TestClient(app, base_url="http://10.1.2.3:8765")
    assert fresh.get("/api/progress", headers={"x-woodseg-token": TOKEN}).status_code == 200
    assert fresh.post("/api/decisions", json={"candidate": 1, "decision": "keep", "reviewer": "x"},
                      headers={"x-woodseg-token": TOKEN}).status_code == 200


def test_security_headers(client: TestClient):
    r = client.get("/")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
