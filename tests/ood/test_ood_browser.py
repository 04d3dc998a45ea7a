"""The review app in a real browser: Debian's Chromium, headless, driven by Playwright (no browser download).

Reviews a few images with the keyboard (fast presses must land on successive cards), undoes, reloads to
check that decisions and the reviewer name persist, accepts a grid screen with a per-tile toggle, and
checks the exported list. At 1280x720: small images fill the viewer crisply, `z` shows them 1:1, `c`
overlays the CAM from the ranking's checkpoint (or says none is known), and the banner and the end-of-queue
text say what is kept and what is left. Needs `apt-get install -y chromium`; without it the test fails and says so.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from ood_helpers import synthetic_ranked

from woodseg.ood.rank import write_ranked
from woodseg.ood.review.app import create_app
from woodseg.ood.review.store import ReviewSettings, ReviewStore

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _serve(store: ReviewStore, **kwargs) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store, **kwargs), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the review server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[str, ReviewStore]]:
    ranked = synthetic_ranked(tmp_path / "images", tmp_path / "ranked")
    store = ReviewStore.create(tmp_path / "review.sqlite", ranked, ReviewSettings(target_n=2))
    with _serve(store, reviewer="default-name") as url:
        yield url, store


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


def _with_checkpoint(tmp_path: Path, checkpoint: Path) -> ReviewStore:
    """A review of the synthetic ranking whose provenance names a real (random resnet10) checkpoint."""
    base = synthetic_ranked(tmp_path / "images", tmp_path / "ranked0")
    ranked = write_ranked(tmp_path / "ranked", base.candidates, {**base.meta, "checkpoint": str(checkpoint)})
    return ReviewStore.create(tmp_path / "review.sqlite", ranked, ReviewSettings(target_n=2))


def _watch(page) -> list[str]:
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" and "404" not in m.text else None)
    return problems


def test_viewer_scales_up_toggles_cam_and_says_what_is_left(tmp_path: Path, browser, checkpoint: Path):
    from playwright.sync_api import expect

    store = _with_checkpoint(tmp_path, checkpoint)
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    problems = _watch(page)
    with _serve(store, reviewer="pw") as base:
        page.goto(f"{base}/review/dog")
        page.wait_for_selector("body[data-ready='1']")
        expect(page.locator("#card-entry")).to_have_text("img000.jpg")
        page.wait_for_function("document.getElementById('card').dataset.scale !== undefined")

        # scaling: a 32-64 px image fills the viewer in one dimension, keeps its aspect ratio, stays crisp
        geo = page.evaluate("""() => {
            const img = document.getElementById('card-img'), box = document.getElementById('imgbox');
            const s = document.getElementById('stage').getBoundingClientRect(), b = box.getBoundingClientRect();
            return {nw: img.naturalWidth, nh: img.naturalHeight, sw: s.width, sh: s.height, bw: b.width, bh: b.height,
                    rendering: getComputedStyle(img).imageRendering, bottom: b.bottom};
        }""")
        assert geo["nw"] <= 64 and geo["sw"] >= 4 * geo["nw"]
        assert min(abs(geo["sw"] - geo["bw"]), abs(geo["sh"] - geo["bh"])) <= 1
        assert abs(geo["sw"] / geo["sh"] - geo["nw"] / geo["nh"]) < 0.03
        assert geo["rendering"] == "pixelated"
        assert geo["bottom"] <= 720 and geo["bh"] >= 300  # the whole viewer is on a 1280x720 screen
        assert page.locator("button[data-decision='keep']").bounding_box()["y"] < 720  # so are the buttons
        page.keyboard.press("z")  # 1:1
        expect(page.locator("#card")).to_have_attribute("data-view", "1:1")
        assert page.evaluate("document.getElementById('stage').getBoundingClientRect().width") == geo["nw"]
        page.keyboard.press("z")
        expect(page.locator("#card")).to_have_attribute("data-view", "fit")

        # the CAM overlay: computed from the ranking's checkpoint, drawn over the image, cached on disk
        cand = next(s for s in store.states("dog") if s.entry == "img000.jpg")
        page.keyboard.press("c")
        expect(page.locator("#card")).to_have_attribute("data-cam", "on", timeout=60_000)
        expect(page.locator("#cam-img")).to_be_visible()
        assert page.evaluate("document.getElementById('cam-img').naturalWidth") > 0
        assert (tmp_path / "review.sqlite.cams" / f"{cand.id}.png").is_file()
        cam_box = page.locator("#cam-img").bounding_box()
        img_box = page.locator("#card-img").bounding_box()
        assert cam_box == img_box
        page.keyboard.press("c")
        expect(page.locator("#card")).to_have_attribute("data-cam", "off")
        expect(page.locator("#cam-img")).to_be_hidden()

        # two keeps reach n = 2: the banner shows the number; the pace appears
        page.keyboard.press("k")
        page.keyboard.press("k")
        expect(page.locator("#target-banner")).to_be_visible()
        expect(page.locator("#target-banner")).to_contain_text("Target reached for dog: 2 kept hard OoDs")
        expect(page.locator("#pace")).to_contain_text("looks/min")
        # rejecting the last candidate while img004 is open goes back to it: no false "end of the queue"
        expect(page.locator("#card-entry")).to_have_text("img004.jpg")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("r")
        expect(page.locator("#card-entry")).to_have_text("img004.jpg")
        expect(page.locator("#done")).to_be_hidden()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")  # past the last candidate on purpose
        expect(page.locator("#done")).to_be_visible()
        done = page.locator("#done-text")
        expect(done).to_contain_text("1 candidate is still unreviewed in dog: press n")
        expect(done).to_contain_text("The target is reached (2 kept of n = 2)")
        expect(done).to_contain_text("candidates left unreviewed are not exported")
        assert "End of the queue" not in page.content()
        page.keyboard.press("n")
        expect(page.locator("#card-entry")).to_have_text("img004.jpg")
        page.keyboard.press("s")
        expect(done).to_contain_text("1 skipped one is still open")

        # the grid: the same toggle overlays every tile
        page.goto(f"{base}/grid/cat")
        page.wait_for_selector("body[data-ready='1']")
        page.keyboard.press("c")
        expect(page.locator("#grid")).to_have_attribute("data-cam", "on")
        expect(page.locator(".tile img.cam")).to_have_count(3)
        page.wait_for_function("() => [...document.querySelectorAll('.tile img.cam')].every((i) => i.complete && i.naturalWidth > 0)",
                               timeout=60_000)
        expect(page.locator("#target-banner")).to_be_hidden()
    assert not problems, problems


def test_cam_toggle_says_when_no_checkpoint_is_known(served, browser):
    from playwright.sync_api import expect

    base, _ = served
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    problems = _watch(page)
    page.goto(f"{base}/review/cat")
    page.wait_for_selector("body[data-ready='1']")
    page.keyboard.press("c")
    expect(page.locator("#card")).to_have_attribute("data-cam", "unavailable")
    expect(page.locator("#cam-note")).to_contain_text("names no checkpoint")
    page.goto(f"{base}/grid/cat")
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#grid")).to_have_attribute("data-cam", "unavailable")  # remembered from the review page
    expect(page.locator("#cam-note")).to_contain_text("names no checkpoint")
    assert not problems, problems


def test_review_page_on_a_4k_screen(served, browser):
    from playwright.sync_api import expect

    base, _ = served
    page = browser.new_page(viewport={"width": 3840, "height": 2160})
    page.goto(f"{base}/review/dog")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_function("() => document.getElementById('card').dataset.scale !== undefined")
    box = page.locator("#imgbox").bounding_box()
    assert box["width"] > 2500 and box["height"] > 1600 and box["y"] + box["height"] <= 2160
    assert "max=2048" in page.locator("#card-img").get_attribute("src")  # fetched at the screen's resolution
    assert page.locator("button[data-decision='keep']").bounding_box()["y"] < 2160
    page.keyboard.press("k")
    expect(page.locator("#card-entry")).to_have_text("img001.jpg")
