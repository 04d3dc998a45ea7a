"""The review app in a real browser: Debian's Chromium, headless, driven by Playwright (no browser download).

Reviews a few images with the keyboard (fast presses must land on successive cards), undoes, reloads to
check that decisions and the reviewer name persist, accepts a grid screen with a per-tile toggle, and
checks the exported list. Needs `apt-get install -y chromium`; without it the test fails and says so.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from ood_helpers import synthetic_ranked

from woodseg.ood.review.app import create_app
from woodseg.ood.review.store import ReviewSettings, ReviewStore

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[str, ReviewStore]]:
    ranked = synthetic_ranked(tmp_path / "images", tmp_path / "ranked")
    store = ReviewStore.create(tmp_path / "review.sqlite", ranked, ReviewSettings(target_n=2))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store, reviewer="default-name"), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the review server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", store
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture()
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Chromium is not installed: run `apt-get update && apt-get install -y chromium` "
                    "(CI's .ci/run installs it); this test must not be skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_keyboard_review_reload_grid_and_export(served, browser):
    from playwright.sync_api import expect

    base, store = served
    ids = {(s.class_name, s.entry): s.id for s in store.states()}
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)

    page.goto(f"{base}/review/dog")
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#card-entry")).to_have_text("img000.jpg")
    page.wait_for_function("document.getElementById('card-img').naturalWidth > 0")
    page.fill("#reviewer", "pw-reviewer")
    page.press("#reviewer", "Enter")  # commits the name and leaves the field

    # three fast key presses: reject img000, keep img001, keep img004 (no waiting in between)
    page.keyboard.press("r")
    page.keyboard.press("k")
    page.keyboard.press("k")
    expect(page.locator("#card-entry")).to_have_text("img007.jpg")
    expect(page.locator("#progress-text")).to_have_attribute("data-reviewed", "3")
    states = {s.entry: s.own for s in store.states("dog")}
    assert states == {"img000.jpg": "reject", "img001.jpg": "keep", "img004.jpg": "keep", "img007.jpg": "unreviewed"}

    page.keyboard.press("u")  # undo the last decision: back to img004, open again
    expect(page.locator("#card-entry")).to_have_text("img004.jpg")
    expect(page.locator("#card-state")).to_have_text("unreviewed")
    expect(page.locator("#progress-text")).to_have_attribute("data-reviewed", "2")
    page.keyboard.press("?")
    expect(page.locator("#keys")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#keys")).to_be_hidden()

    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#card-entry")).to_have_text("img004.jpg")  # resumes at the first open candidate
    expect(page.locator("#progress-text")).to_have_attribute("data-kept", "1")
    expect(page.locator("#reviewer")).to_have_value("pw-reviewer")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#card-entry")).to_have_text("img001.jpg")
    expect(page.locator("#card-state")).to_have_text("keep")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("k")
    page.keyboard.press("k")
    expect(page.locator("#target-banner")).to_be_visible()  # 3 kept >= n = 2
    expect(page.locator("#done")).to_be_visible()

    # the cat grid: img000 was rejected under dog (locked); toggle img006 to reject, accept the screen
    page.goto(f"{base}/grid/cat")
    page.wait_for_selector("body[data-ready='1']")
    locked = page.locator(f".tile[data-candidate='{ids[('cat', 'img000.jpg')]}']")
    expect(locked).to_have_attribute("data-choice", "locked")
    tile6 = page.locator(f".tile[data-candidate='{ids[('cat', 'img006.jpg')]}']")
    tile6.click()
    expect(tile6).to_have_attribute("data-choice", "reject")
    with page.expect_navigation():  # the screen is saved in one batch, then the page moves on
        page.keyboard.press("Enter")
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator(f".tile[data-candidate='{ids[('cat', 'img003.jpg')]}']")).to_have_class(re.compile(r"\bsaved\b"))
    cat = {s.entry: s.state for s in store.states("cat")}
    assert cat == {"img000.jpg": "rejected-elsewhere", "img003.jpg": "keep", "img006.jpg": "reject"}

    exported = page.request.get(f"{base}/export/ood_list.txt")
    assert exported.ok
    assert exported.text() == "img003.jpg\nimg001.jpg\nimg004.jpg\nimg007.jpg\n"
    reviewers = {e["reviewer"] for e in store.events()}
    assert reviewers == {"pw-reviewer"}
    assert not problems, problems
