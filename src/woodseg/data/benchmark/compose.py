"""Composing one image: a scene, distractors behind, objects on top, the exact mask of what is visible.

* Each object is a :class:`~woodseg.data.benchmark.shapes.Sprite` painted with a colour-jittered crop of
  a real photograph (hue rotated anywhere on the wheel, saturation and brightness scaled), lit from above
  and shaded by its part layers; so neither colour nor texture tells the class.
* Objects that stand on the ground (horse, train, boat, an aeroplane on a runway) have their bottom edge
  below the scene's ``ground_top``; everything else is placed anywhere. Objects may overlap (later-drawn on
  top) and be cut by the image border.
* The mask is exact for what is visible: a pixel belongs to the topmost object whose alpha is >= 0.5.
  Then a ``void_px`` band (value 255) is set on the inside of object boundaries, as VOC does.
* Every object must keep ``min_visible_frac`` of its area and ``min_visible_px`` non-void pixels, or the
  placement is redrawn (after 12 failed tries the sprites are redrawn larger); the XML labels therefore
  always equal the classes in the mask.
* Finally a mild global photometric jitter (brightness, contrast, gamma, sensor noise) is applied to the
  whole image, objects and scene alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from woodseg.data.benchmark.materials import material
from woodseg.data.benchmark.scenes import Scene
from woodseg.data.benchmark.shapes import Sprite, class_sprite, distractor_sprite
from woodseg.data.benchmark.sources import FILL_SOURCES, PHOTOS
from woodseg.data.benchmark.spec import CLASSES, BenchmarkSpec
from woodseg.data.benchmark.textures import as_rgb, crop_resize, hsv, jitter_colour, log_uniform, uniform

MIN_OBJECT_PX = 12.0
"""Smallest object side in pixels, whatever the image size."""

GROUND_CLASSES = ("horse", "train", "boat")


@dataclass
class PlacedObject:
    cls: str
    view: str
    pose: str
    bbox: tuple[int, int, int, int]  # visible extent, 0-based inclusive (xmin, ymin, xmax, ymax)
    truncated: bool
    visible_frac: float
    pixels: int


@dataclass
class Composition:
    image: np.ndarray  # uint8 (h, w, 3)
    mask: np.ndarray  # uint8 (h, w): 0 background, k+1 class k, 255 void
    objects: list[PlacedObject]
    distractors: list[str]


def paint(sprite: Sprite, rng: np.random.Generator, cls: str | None = None,
          surface: np.ndarray | None = None) -> np.ndarray:
    """Colour a sprite: ``surface`` if given, else its class's material (distractors: a photo-crop fill with
    jittered colour); then top lighting, part shading, screen content."""
    h, w = sprite.shape
    if surface is not None:
        rgb = surface
    elif cls is None:
        src = str(rng.choice(FILL_SOURCES))
        fill = as_rgb(crop_resize(rng, src, h, w, zoom=(0.3, 2.5), rotate90=True))
        rgb = jitter_colour(fill, rng, hue=180.0, sat=(0.5, 1.4), bright=(0.55, 1.35))
    else:
        rgb = material(cls, rng, h, w)
    k = uniform(rng, 0.05, 0.45)
    rgb = rgb * (1.0 + k * np.linspace(0.5, -0.5, h, dtype=np.float32))[:, None, None]
    if sprite.dark.any():
        rgb = rgb * (1.0 - uniform(rng, 0.45, 0.8) * sprite.dark[..., None])
    if sprite.light.any():
        lc = hsv(uniform(rng, 0, 360), uniform(rng, 0.0, 0.25), uniform(rng, 0.8, 1.0))
        ls = uniform(rng, 0.6, 0.9) * sprite.light[..., None]
        rgb = rgb * (1 - ls) + lc * ls
    if sprite.screen.any():
        content = as_rgb(crop_resize(rng, str(rng.choice(PHOTOS)), h, w, zoom=(0.5, 3.0)))
        content = jitter_colour(content, rng, hue=10.0, sat=(0.9, 1.3), bright=(0.9, 1.3))
        sc = sprite.screen[..., None]
        rgb = rgb * (1 - sc) + content * sc
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def flat_surface(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """One random colour over the whole sprite (``object_fill: flat``)."""
    colour = hsv(uniform(rng, 0, 360), uniform(rng, 0.2, 0.9), uniform(rng, 0.3, 0.95))
    return np.broadcast_to(colour, (h, w, 3)).astype(np.float32)


def void_band(labels: np.ndarray, width: int) -> np.ndarray:
    """Bool map of the ``width``-pixel band on the inside of every object boundary (labels > 0)."""
    band = np.zeros(labels.shape, dtype=bool)
    cur = labels.astype(np.int16)
    for _ in range(width):
        diff = np.zeros(labels.shape, dtype=bool)
        diff[:-1] |= cur[:-1] != cur[1:]
        diff[1:] |= cur[1:] != cur[:-1]
        diff[:, :-1] |= cur[:, :-1] != cur[:, 1:]
        diff[:, 1:] |= cur[:, 1:] != cur[:, :-1]
        new = diff & (labels > 0) & ~band
        band |= new
        cur = np.where(band, -1, cur).astype(np.int16)
    return band


def _interior_px(alpha: np.ndarray, width: int) -> int:
    m = (alpha >= 0.5).astype(np.uint8)
    return int((m.astype(bool) & ~void_band(np.pad(m, 1), width)[1:-1, 1:-1]).sum())


def _sprite(cls: str, rng: np.random.Generator, size: float, spec: BenchmarkSpec, on_ground: bool) -> Sprite:
    """A sprite big enough to keep ``min_visible_px`` non-void pixels on its own."""
    need = 1.5 * spec.min_visible_px / max(spec.min_visible_frac, 0.2)
    for _ in range(12):
        s = class_sprite(cls, rng, size, spec.max_rotation_deg, on_ground)
        have = _interior_px(s.alpha, spec.void_px)
        if have >= need:
            return s
        size *= max(1.2, float(np.sqrt(need / max(have, 1.0))) * 1.1)
    return s


def _position(rng: np.random.Generator, sh: int, sw: int, h: int, w: int, ground_top: float | None,
              grounded: bool) -> tuple[int, int]:
    """Top-left corner: at least ~60% inside along each axis; grounded objects stand below ground_top."""
    x0 = int(np.floor(uniform(rng, -0.3 * sw, max(-0.3 * sw, w - 0.7 * sw))))
    if grounded and ground_top is not None:
        lo = max(ground_top + 0.15 * sh, 0.7 * sh)
        hi = h + 0.2 * sh
        bottom = uniform(rng, min(lo, hi), hi)
        y0 = int(np.floor(bottom - sh))
    else:
        y0 = int(np.floor(uniform(rng, -0.3 * sh, max(-0.3 * sh, h - 0.7 * sh))))
    return y0, x0


def _blit(canvas: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, y0: int, x0: int) -> tuple[slice, slice, slice,
                                                                                               slice] | None:
    h, w = canvas.shape[:2]
    sh, sw = alpha.shape
    cy0, cx0 = max(0, y0), max(0, x0)
    cy1, cx1 = min(h, y0 + sh), min(w, x0 + sw)
    if cy1 <= cy0 or cx1 <= cx0:
        return None
    dst = (slice(cy0, cy1), slice(cx0, cx1))
    src = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
    a = alpha[src][..., None]
    canvas[dst] = canvas[dst] * (1 - a) + rgb[src] * a
    return dst + src


def compose(scene: Scene, object_classes: tuple[str, ...], n_distractors: int, rng: np.random.Generator,
            spec: BenchmarkSpec) -> Composition:
    """Draw distractors and objects onto the scene; returns the image, its mask and the object records."""
    h, w = scene.rgb.shape[:2]
    side = min(h, w)
    lo, hi = spec.object_scale

    distractors = []
    base = scene.rgb.copy()
    for _ in range(n_distractors):
        ds = distractor_sprite(rng, max(MIN_OBJECT_PX * 0.6, log_uniform(rng, 0.08, 0.35) * side))
        y0, x0 = _position(rng, ds.shape[0], ds.shape[1], h, w, scene.ground_top, grounded=True)
        _blit(base, paint(ds, rng), ds.alpha, y0, x0)
        distractors.append(ds.kind)

    classes = list(object_classes)
    grow = 1.0
    sprites: list[tuple[str, Sprite, np.ndarray, bool]] = []
    for attempt in range(40):
        if attempt == 0 or attempt >= 12:
            if attempt >= 12:
                grow *= 1.1
            if attempt == 30:  # keep one object per class, drop the extras
                seen: set[str] = set()
                classes = [c for c in classes if not (c in seen or seen.add(c))]  # type: ignore[func-returns-value]
            sprites = []
            for cls in classes:
                grounded = cls in GROUND_CLASSES or (cls == "aeroplane" and scene.name == "runway")
                size = min(0.95 * side, max(MIN_OBJECT_PX, log_uniform(rng, lo, hi) * side) * grow)
                sp = _sprite(cls, rng, size, spec, on_ground=grounded and scene.ground_top is not None)
                flat = flat_surface(rng, *sp.shape) if spec.object_fill == "flat" else None
                sprites.append((cls, sp, paint(sp, rng, cls, surface=flat), grounded))
        result = _try_place(base, scene, sprites, rng, spec)
        if result is not None:
            image, mask, objects = result
            return Composition(_finish(image, rng), mask, objects, distractors)
    raise RuntimeError(f"could not place {object_classes} on a {scene.name} scene")  # pragma: no cover


def _try_place(base: np.ndarray, scene: Scene, sprites: list[tuple[str, Sprite, np.ndarray, bool]],
               rng: np.random.Generator, spec: BenchmarkSpec) -> tuple[np.ndarray, np.ndarray,
                                                                       list[PlacedObject]] | None:
    h, w = base.shape[:2]
    canvas = base.copy()
    inst = np.full((h, w), -1, dtype=np.int16)
    labels = np.zeros((h, w), dtype=np.uint8)
    placed = []
    for i, (cls, sp, rgb, grounded) in enumerate(sprites):
        y0, x0 = _position(rng, sp.shape[0], sp.shape[1], h, w, scene.ground_top, grounded)
        sl = _blit(canvas, rgb, sp.alpha, y0, x0)
        if sl is None:
            return None
        dy, dx, sy, sx = sl
        m = sp.alpha[sy, sx] >= 0.5
        inst[dy, dx][m] = i
        labels[dy, dx][m] = CLASSES.index(cls) + 1
        placed.append((y0, x0))
    band = void_band(labels, spec.void_px) if spec.void_px else np.zeros((h, w), bool)
    objects = []
    for i, (cls, sp, _, _) in enumerate(sprites):
        full = int((sp.alpha >= 0.5).sum())
        vis = inst == i
        n_vis = int(vis.sum())
        if n_vis < spec.min_visible_frac * full or int((vis & ~band).sum()) < spec.min_visible_px:
            return None
        ys, xs = np.nonzero(vis)
        y0, x0 = placed[i]
        truncated = y0 < 0 or x0 < 0 or y0 + sp.shape[0] > h or x0 + sp.shape[1] > w
        objects.append(PlacedObject(cls, sp.view, sp.pose, (int(xs.min()), int(ys.min()), int(xs.max()),
                                                            int(ys.max())), bool(truncated), n_vis / full, n_vis))
    mask = labels.copy()
    mask[band] = 255
    return canvas, mask, objects


def _finish(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Global photometric jitter of the whole image (contrast, brightness, gamma, noise), then 8 bits."""
    m = float(rgb.mean())
    out = np.clip((rgb - m) * uniform(rng, 0.9, 1.1) + m * uniform(rng, 0.9, 1.1), 0.0, 1.0)
    lut = np.linspace(0.0, 1.0, 1024, dtype=np.float32) ** uniform(rng, 0.9, 1.1)
    out = lut[(out * 1023.0 + 0.5).astype(np.int32)]
    sigma = uniform(rng, 0.0, 0.015)
    out = out + sigma * rng.standard_normal(out.shape, dtype=np.float32)
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
