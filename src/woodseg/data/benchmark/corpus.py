"""The benchmark world's own "ImageNet": many object categories, none of the benchmark's classes.

The paper's classifiers start from ImageNet weights, so their features already tell objects apart from
scenes before W-OoD sees a single OoD image. A network trained from scratch on a few hundred benchmark
images does not (it learns the context first). This corpus gives the benchmark world that pretraining
stage: ``n_categories`` procedural object categories, each a fixed layout of parts (a body plus
appendages, inner marks) with its own surface pattern and typical colours, drawn with random size, pose and mirror
on every scene the benchmark knows (context and neutral scenes alike, chosen independently of the
category, so no scene predicts a category). None of the categories is a benchmark class: their parts are
random ellipses, boxes, wedges and limbs, not the aeroplane/bird/boat/horse/train/monitor drawings.

Layout on disk: the torchvision ``ImageFolder`` convention, so a user can pretrain on any corpus laid out
the same way::

    <root>/train/<category>/<id>.jpg
    <root>/val/<category>/<id>.jpg
    <root>/manifest.json            # version, spec, counts, checksum (written last)

Content is a pure function of ``(CORPUS_VERSION, CorpusSpec)``: image (split, k, i) draws from
``SeedSequence([seed, split stream, k, i])``, and the category templates from ``[seed, TEMPLATE, k]``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from woodseg.data.benchmark.cache import cache_folder
from woodseg.data.benchmark.compose import MIN_OBJECT_PX, _blit, _finish, _position, paint
from woodseg.data.benchmark.generate import jpeg_bytes, tree_checksum
from woodseg.data.benchmark.scenes import render_scene
from woodseg.data.benchmark.shapes import Drawing, distractor_sprite, finish
from woodseg.data.benchmark.spec import ALL_SCENES
from woodseg.data.benchmark.textures import fbm, hsv, log_uniform, uniform

log = logging.getLogger(__name__)

CORPUS_VERSION = "1.0"
"""Bump on any change to what is drawn; the cache keys on it."""

MANIFEST = "manifest.json"
_TEMPLATE, _TRAIN, _VAL = 11, 12, 13
PATTERNS = ("stripes", "checks", "dots", "scales", "mottle", "rings", "bands", "grain")


@dataclass(frozen=True)
class CorpusSpec:
    """All parameters of one pretraining corpus."""

    seed: int = 0
    n_categories: int = 64
    n_train: int = 250
    """Training images per category."""
    n_val: int = 30
    """Held-out images per category (the pretraining accuracy is measured on them)."""
    size: int = 96
    object_scale: tuple[float, float] = (0.45, 0.95)
    max_rotation_deg: float = 15.0
    distractor_rate: float = 0.25
    jpeg_quality: int = 92

    def __post_init__(self) -> None:
        object.__setattr__(self, "object_scale", tuple(float(s) for s in self.object_scale))
        if self.n_categories < 2 or self.n_train < 1 or self.n_val < 0 or self.size < 32:
            raise ValueError("invalid CorpusSpec: need >= 2 categories, >= 1 training image each, size >= 32")

    @classmethod
    def tiny(cls, **overrides: object) -> CorpusSpec:
        """Four categories of a few 48 px images: for tests."""
        base: dict[str, object] = dict(n_categories=4, n_train=6, n_val=2, size=48)
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["object_scale"] = list(self.object_scale)
        return d

    def hash(self) -> str:
        blob = json.dumps({"version": CORPUS_VERSION, "spec": self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def folder_name(self) -> str:
        return f"corpus-v{CORPUS_VERSION}-{self.hash()}"


def category_name(k: int) -> str:
    return f"cat{k:03d}"


# -- category templates ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Part:
    kind: str  # ellipse, box, wedge, limb
    layer: str  # body, dark, light
    cx: float
    cy: float
    sx: float
    sy: float
    angle: float


@dataclass(frozen=True)
class Category:
    parts: tuple[Part, ...]
    palette: tuple[tuple[float, float, float], ...]  # (hue, saturation, value) the colours are drawn near
    pattern: str
    period: float  # pattern period as a fraction of the object's longer side
    pattern_angle: float
    contrast: float


def category(spec: CorpusSpec, k: int) -> Category:
    """Category ``k``: a body, 1-4 appendages on its outline and 0-2 inner marks, and a surface pattern."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, _TEMPLATE, k]))
    bw, bh = uniform(rng, 0.5, 1.0), uniform(rng, 0.2, 0.8)
    parts = [Part(str(rng.choice(["ellipse", "box", "wedge"])), "body", 0.0, 0.0, bw, bh, uniform(rng, -20, 20))]
    for _ in range(int(rng.integers(1, 5))):
        t = uniform(rng, 0, 2 * np.pi)
        kind = str(rng.choice(["ellipse", "box", "wedge", "limb"]))
        sx, sy = uniform(rng, 0.12, 0.55), uniform(rng, 0.06, 0.3)
        parts.append(Part(kind, "body", 0.5 * bw * np.cos(t), 0.5 * bh * np.sin(t), sx, sy,
                          float(np.rad2deg(t)) + uniform(rng, -40, 40)))
    for _ in range(int(rng.integers(0, 3))):
        parts.append(Part(str(rng.choice(["ellipse", "box"])), str(rng.choice(["dark", "light"])),
                          uniform(rng, -0.3, 0.3) * bw, uniform(rng, -0.3, 0.3) * bh, uniform(rng, 0.08, 0.3) * bw,
                          uniform(rng, 0.08, 0.3) * bh, uniform(rng, -30, 30)))
    palette = tuple((uniform(rng, 0, 360), uniform(rng, 0.1, 0.9), uniform(rng, 0.25, 0.95)) for _ in range(3))
    return Category(tuple(parts), palette, str(rng.choice(PATTERNS)), uniform(rng, 0.06, 0.2), uniform(rng, 0, 180),
                    uniform(rng, 0.5, 0.9))


def _draw_part(d: Drawing, p: Part, rng: np.random.Generator) -> None:
    """One part with per-instance jitter of its place, size and angle."""
    j = lambda v, s=0.12: v * (1.0 + s * float(rng.standard_normal()))  # noqa: E731
    cx, cy, sx, sy = p.cx + 0.04 * float(rng.standard_normal()), p.cy + 0.04 * float(rng.standard_normal()), j(
        p.sx), j(p.sy)
    a = np.deg2rad(p.angle + 8.0 * float(rng.standard_normal()))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    if p.kind == "ellipse":
        d.ellipse(cx, cy, sx / 2, sy / 2, float(np.rad2deg(a)), layer=p.layer)
        return
    if p.kind == "limb":
        end = np.array([cx, cy]) + rot @ np.array([sx, 0.0])
        d.line([(cx, cy), (float(end[0]), float(end[1]))], width=max(sy * 0.5, 0.04), layer=p.layer)
        return
    local = ([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)] if p.kind == "box"
             else [(-0.5, -0.5), (0.5, 0.0), (-0.5, 0.5)])
    pts = [tuple(np.array([cx, cy]) + rot @ (np.array(q) * [sx, sy])) for q in local]
    d.poly([(float(x), float(y)) for x, y in pts], p.layer)


def surface(cat: Category, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """The category's pattern in two colours near its palette (as real categories have typical colours, shared
    in part with others), or in two random colours one time in four."""
    def colour() -> np.ndarray:
        if rng.random() < 0.25:
            return hsv(uniform(rng, 0, 360), uniform(rng, 0.0, 0.9), uniform(rng, 0.2, 0.95))
        hue, sat, val = cat.palette[int(rng.integers(len(cat.palette)))]
        return hsv((hue + uniform(rng, -15, 15)) % 360, float(np.clip(sat * uniform(rng, 0.8, 1.2), 0, 1)),
                   float(np.clip(val * uniform(rng, 0.85, 1.15), 0, 1)))

    c1, c2 = colour(), colour()
    period = max(2.0, cat.period * max(h, w) * uniform(rng, 0.9, 1.1))
    a = np.deg2rad(cat.pattern_angle + uniform(rng, -15, 15))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xx * np.cos(a) + yy * np.sin(a), yy * np.cos(a) - xx * np.sin(a)
    if cat.pattern == "stripes":
        m = (np.mod(u, period) < period / 2).astype(np.float32)
    elif cat.pattern == "checks":
        m = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    elif cat.pattern == "dots":
        m = ((np.mod(u, period) - period / 2) ** 2 + (np.mod(v, period) - period / 2) ** 2 < (period / 3.2) ** 2)
        m = m.astype(np.float32)
    elif cat.pattern == "scales":
        m = np.abs(np.sin(u / period * np.pi + 0.9 * np.sin(v / period * np.pi))) ** 0.6
    elif cat.pattern == "mottle":
        m = (fbm(rng, h, w, base=max(2.0, max(h, w) / period), octaves=2) > 0.5).astype(np.float32)
    elif cat.pattern == "rings":
        r = np.hypot(xx - w * uniform(rng, 0.3, 0.7), yy - h * uniform(rng, 0.3, 0.7))
        m = (np.mod(r, period) < period / 2).astype(np.float32)
    elif cat.pattern == "bands":
        m = (np.mod(v, 2.5 * period) < period / 2).astype(np.float32)
    else:  # grain: fine streaks along the pattern angle
        m = fbm(rng, h, w, base=max(2.0, max(h, w) / period), octaves=2, stretch=0.25)
    mix = cat.contrast * m[..., None]
    return np.clip(c1 * (1 - mix) + c2 * mix, 0.0, 1.0).astype(np.float32)


def render(spec: CorpusSpec, split: str, k: int, i: int) -> np.ndarray:
    """Image ``i`` of category ``k`` in ``split`` (uint8, size x size x 3)."""
    stream = _TRAIN if split == "train" else _VAL
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, stream, k, i]))
    h = w = spec.size
    scene = render_scene(str(rng.choice(ALL_SCENES)), rng, h, w)
    canvas = scene.rgb.copy()
    if rng.random() < spec.distractor_rate:
        ds = distractor_sprite(rng, max(MIN_OBJECT_PX * 0.6, log_uniform(rng, 0.1, 0.3) * h))
        y0, x0 = _position(rng, ds.shape[0], ds.shape[1], h, w, scene.ground_top, grounded=True)
        _blit(canvas, paint(ds, rng), ds.alpha, y0, x0)
    cat = category(spec, k)
    d = Drawing()
    for p in cat.parts:
        _draw_part(d, p, rng)
    size = max(MIN_OBJECT_PX, log_uniform(rng, *spec.object_scale) * h)
    rot = uniform(rng, -spec.max_rotation_deg, spec.max_rotation_deg)
    sprite = finish(d.rasterize(size, bool(rng.random() < 0.5), rot), category_name(k), "any", "Unspecified")
    sh, sw = sprite.shape
    rgb = paint(sprite, rng, surface=surface(cat, rng, sh, sw))
    y0, x0 = _position(rng, sh, sw, h, w, None, grounded=False)
    _blit(canvas, rgb, sprite.alpha, y0, x0)
    return _finish(canvas, rng)


# -- on disk --------------------------------------------------------------------------------------------

def generate_corpus(spec: CorpusSpec, root: str | Path) -> dict[str, object]:
    """Write the corpus into ``root`` (ImageFolder layout), manifest last. Returns the manifest."""
    root = Path(root)
    for split, n in (("train", spec.n_train), ("val", spec.n_val)):
        for k in range(spec.n_categories):
            folder = root / split / category_name(k)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (folder / f"{split}_{k:03d}_{i:05d}.jpg").write_bytes(
                    jpeg_bytes(render(spec, split, k, i), spec.jpeg_quality))
    checksum, n_files = tree_checksum(root)
    manifest = {"name": "woodseg pretraining corpus", "version": CORPUS_VERSION, "spec": spec.to_dict(),
                "spec_hash": spec.hash(), "complete": True, "files": n_files, "checksum": checksum,
                "categories": [category_name(k) for k in range(spec.n_categories)]}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def check_corpus(root: str | Path, spec: CorpusSpec) -> str | None:
    """Why ``root`` is not the complete corpus of ``spec``, or None if it is."""
    try:
        manifest = json.loads((Path(root) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return f"no readable manifest ({exc.__class__.__name__})"
    if manifest.get("version") != CORPUS_VERSION or manifest.get("spec") != spec.to_dict():
        return "manifest holds another version or spec"
    if not manifest.get("complete"):
        return "incomplete"
    return None


def ensure_corpus(spec: CorpusSpec | None = None, cache_dir: str | Path | None = None) -> Path:
    """The corpus folder for ``spec``, generated once into a temporary sibling and renamed into place."""
    spec = spec or CorpusSpec()
    cache = cache_folder("corpus", cache_dir)
    root = cache / spec.folder_name()
    if root.exists() and check_corpus(root, spec) is None:
        return root
    log.info("generating the pretraining corpus into %s", root)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=cache))
    try:
        generate_corpus(spec, tmp)
        if root.exists():
            if check_corpus(root, spec) is None:  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
                return root
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
