"""Screenshots of the review app at 1280x720 for docs/ood-collection.md (index, one-image view, grid).

Builds a small review in a temporary folder (drawn images of mixed sizes, a random resnet10 checkpoint so
the CAM overlay has something to draw, a few decisions made 6 s apart so the pace line shows), serves it,
and drives Debian's Chromium with Playwright (`make browser` installs it):

    PYTHONPATH=src python docs/make_screenshots.py [--out docs/img] [--size 1280x720]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import torch
import uvicorn
from PIL import Image, ImageDraw

import woodseg.ood.review.store as store_mod
from woodseg.config import ModelConfig
from woodseg.models.cam_net import build_cam_net, classifier_checkpoint
from woodseg.ood.candidates import Candidate
from woodseg.ood.rank import write_ranked
from woodseg.ood.review.app import create_app
from woodseg.ood.review.store import ReviewSettings, ReviewStore

CLASSES = ("horse", "sheep", "train")
SIZES = [(640, 480), (96, 128), (800, 533), (300, 300), (112, 84), (1024, 683)]  # horse opens on a 112 px one


def draw(path: Path, size: tuple[int, int], rng: np.random.Generator) -> None:
    """A sky-and-ground scene with a few shapes: enough structure to judge the viewer, no real content."""
    w, h = size
    sky, ground = rng.integers(90, 230, 3), rng.integers(40, 160, 3)
    img = Image.new("RGB", size)
    px = ImageDraw.Draw(img)
    horizon = int(h * rng.uniform(0.45, 0.7))
    px.rectangle([0, 0, w, horizon], fill=tuple(int(v) for v in sky))
    px.rectangle([0, horizon, w, h], fill=tuple(int(v) for v in ground))
    for _ in range(3):
        x, y, r = rng.integers(0, w), rng.integers(0, h), int(rng.integers(max(4, w // 20), max(5, w // 6)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (px.ellipse if rng.random() < 0.5 else px.rectangle)([x - r, y - r, x + r, y + r], fill=colour)
    img.save(path, quality=92)


def build(folder: Path) -> ReviewStore:
    rng = np.random.default_rng(3)
    root = folder / "images"
    root.mkdir(parents=True)
    names = []
    for i in range(36):
        name = f"ood_{i:05d}.jpg"
        draw(root / name, SIZES[i % len(SIZES)], rng)
        names.append(name)
    torch.manual_seed(0)
    net = build_cam_net(ModelConfig(backbone="resnet10", weights=None, freeze_bn=False, frozen_stages=0), len(CLASSES))
    ckpt = folder / "last.pt"
    torch.save(classifier_checkpoint(net, CLASSES, {}), ckpt)
    cands = {}
    for k, cls in enumerate(CLASSES):
        members = [n for i, n in enumerate(names) if i % 3 == k or i % 5 == 0]
        cands[cls] = [Candidate(n, cls, round(0.97 - 0.02 * r, 4), r + 1, 0.5, 0.5) for r, n in enumerate(members)]
    ranked = write_ranked(folder / "ranked", cands, {"class_names": list(CLASSES), "root": str(root), "threshold": 0.5,
                                                     "checkpoint": str(ckpt), "long_side": 500})
    store = ReviewStore.create(folder / "review.sqlite", ranked, ReviewSettings(target_n=5))
    clock = iter(datetime(2026, 1, 1, 9, 0, tzinfo=UTC) + timedelta(seconds=6 * k) for k in range(100))
    real_now = store_mod.now_iso
    store_mod.now_iso = lambda: next(clock).isoformat(timespec="milliseconds")
    try:
        horse = store.states("horse")
        for s, d in zip(horse[:5], ("keep", "reject", "keep", "keep", "skip"), strict=True):
            store.decide(s.id, d, "ann")
        for s in store.states("train")[:5]:
            store.decide(s.id, "keep", "ann")
    finally:
        store_mod.now_iso = real_now
    return store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "img")
    ap.add_argument("--size", default="1280x720", help="viewport WIDTHxHEIGHT (e.g. 3840x2160 to check a 4K screen)")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("Chromium is not installed: run `make browser` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = build(Path(tmp))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(store, reviewer="ann"), host="127.0.0.1", port=port,
                                               log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(base + "/")
            page.wait_for_selector("body[data-ready='1']")
            page.evaluate("localStorage.setItem('woodseg.reviewer', 'ann')")
            page.screenshot(path=str(args.out / "review-index.png"))
            page.goto(base + "/review/horse")
            page.wait_for_selector("body[data-ready='1']")
            page.wait_for_function("() => document.getElementById('card').dataset.scale !== undefined")
            page.keyboard.press("c")
            page.wait_for_selector("#card[data-cam='on']", timeout=120_000)
            page.wait_for_function("() => document.getElementById('pace').dataset.rate !== undefined")
            page.screenshot(path=str(args.out / "review-single.png"))
            page.keyboard.press("c")
            page.goto(base + "/grid/train")
            page.wait_for_selector("body[data-ready='1']")
            page.wait_for_function("() => [...document.querySelectorAll('.tile img')].every((i) => i.complete)")
            page.screenshot(path=str(args.out / "review-grid.png"))
            browser.close()
        server.should_exit = True
    for name in ("review-index.png", "review-single.png", "review-grid.png"):
        print(args.out / name)


if __name__ == "__main__":
    main()
