"""Pixel-level building blocks: noise, photo crops, tints, colour jitter and ground-plane perspective.

All functions take an explicit ``numpy.random.Generator`` and return float32 arrays in [0, 1] (or
unbounded maps where stated); nothing reads global random state.

Ground-plane geometry (:class:`Ground`): for a horizon at image row ``yh`` (may lie above the image:
looking down) and a vanishing point at column ``vx``, a pixel below the horizon maps to ground
coordinates ``X`` (lateral) and ``D`` (depth), both measured in *bottom-row pixels*: at the bottom row one
pixel step is one unit in either direction, and everything shrinks towards the horizon. Lines of constant
``X`` converge at the vanishing point (rails, runway stripes); bands of constant ``D`` are sleepers,
dashes and wave crests. Textures are looked up at ``(D, X)`` through a box-filtered mip pyramid so that
distant ground does not alias, and distance haze blends towards a horizon colour.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

from woodseg.data.benchmark.sources import source_array, source_image


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    span = e1 - e0 if e1 != e0 else 1e-6
    t = np.clip((x - e0) / span, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def hsv(h_deg: float, s: float, v: float) -> np.ndarray:
    """An RGB colour (float32, shape (3,)) from hue in degrees, saturation and value."""
    return np.array(colorsys.hsv_to_rgb((h_deg % 360.0) / 360.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))),
                    dtype=np.float32)


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def resize_float(arr: np.ndarray, h: int, w: int, resample: int = Image.BICUBIC) -> np.ndarray:
    """Resize a 2-D float32 map with PIL (mode F)."""
    return np.asarray(Image.fromarray(arr.astype(np.float32), mode="F").resize((w, h), resample), dtype=np.float32)


def fbm(rng: np.random.Generator, h: int, w: int, base: float = 3.0, octaves: int = 4, persistence: float = 0.5,
        stretch: float = 1.0) -> np.ndarray:
    """Fractal value noise in [0, 1]: random grids of growing resolution, bicubic-upsampled and summed.

    ``base`` is the coarsest number of cells across the image height; ``stretch`` > 1 makes blobs wider
    than tall (clouds, water streaks). The octaves are summed at half resolution (the noise is smooth at
    that scale), then upsampled once.
    """
    wh, ww = (max(2, (h + 1) // 2), max(2, (w + 1) // 2)) if min(h, w) >= 64 else (h, w)
    acc = np.zeros((wh, ww), dtype=np.float32)
    amp = 1.0
    for o in range(octaves):
        gy = max(2, int(round(base * 2**o)) + 1)
        gx = max(2, int(round(base * 2**o * w / h / stretch)) + 1)
        grid = rng.random((gy, gx), dtype=np.float32)
        acc += amp * resize_float(grid, wh, ww)
        amp *= persistence
    if (wh, ww) != (h, w):
        acc = resize_float(acc, h, w, Image.BILINEAR)
    lo, hi = float(acc.min()), float(acc.max())
    return (acc - lo) / (hi - lo if hi > lo else 1.0)


def fbm_1d(rng: np.random.Generator, n: int, base: float = 3.0, octaves: int = 4) -> np.ndarray:
    """A 1-D fractal profile in [0, 1] of length n (skylines, hills, shores)."""
    acc = np.zeros(n, dtype=np.float32)
    amp = 1.0
    xs = np.linspace(0.0, 1.0, n, dtype=np.float32)
    for o in range(octaves):
        g = int(round(base * 2**o)) + 2
        pts = rng.random(g, dtype=np.float32)
        acc += amp * np.interp(xs, np.linspace(0.0, 1.0, g), pts).astype(np.float32)
        amp *= 0.5
    lo, hi = float(acc.min()), float(acc.max())
    return (acc - lo) / (hi - lo if hi > lo else 1.0)


def crop_resize(rng: np.random.Generator, name: str, h: int, w: int, zoom: tuple[float, float] = (0.5, 2.0),
                rotate90: bool = False, quarter: int | None = None) -> np.ndarray:
    """A random crop of a source, resized to (h, w): (h, w) for greyscale sources, (h, w, 3) for colour.

    ``zoom`` is the range (log-uniform) of source pixels per output pixel; the crop is clipped to the source.
    Random horizontal flip; with ``rotate90`` also random quarter turns (for orientation-free textures),
    or a fixed number of ``quarter`` turns.
    """
    im = source_image(name)
    sw, sh = im.size
    z = log_uniform(rng, *zoom)
    cw, ch = w * z, h * z
    f = min(1.0, sw / cw, sh / ch)
    cw, ch = cw * f, ch * f
    x0 = uniform(rng, 0.0, max(0.0, sw - cw))  # max: cw * f may exceed sw by a rounding error
    y0 = uniform(rng, 0.0, max(0.0, sh - ch))
    if quarter is None:
        quarter = int(rng.integers(0, 4)) if rotate90 else 0
    flip = bool(rng.random() < 0.5)
    if quarter % 2:  # crop a transposed box so that the turned result is (h, w)
        cw, ch = ch, cw
        cw, ch = min(cw, sw), min(ch, sh)
        x0, y0 = min(x0, sw - cw), min(y0, sh - ch)
    out_w, out_h = (h, w) if quarter % 2 else (w, h)
    crop = im.resize((out_w, out_h), Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))
    if quarter:
        crop = crop.rotate(90 * quarter, expand=True)
    if flip:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(crop, dtype=np.float32) / 255.0


def as_rgb(arr: np.ndarray) -> np.ndarray:
    return arr if arr.ndim == 3 else np.repeat(arr[..., None], 3, axis=2)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114 if rgb.ndim == 3 else rgb


def tint(gray: np.ndarray, colour: np.ndarray, contrast: float = 1.0) -> np.ndarray:
    """Colour a greyscale texture: its luminance deviations modulate a base colour (RGB float (3,))."""
    g = gray if gray.ndim == 2 else luminance(gray)
    sub = g[::3, ::3]  # statistics from a subsample: same to 3 decimals, a tenth of the work
    dev = (g - float(sub.mean())) / (float(sub.std()) + 1e-4)
    mod = 1.0 + 0.22 * contrast * dev
    return np.clip(mod[..., None] * colour[None, None, :], 0.0, 1.0).astype(np.float32)


_RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float64)
_YIQ2RGB = np.linalg.inv(_RGB2YIQ)


def colour_matrix(hue_deg: float, saturation: float, brightness: float) -> np.ndarray:
    """3x3 matrix (for ``rgb @ M.T``): rotate hue in YIQ, scale chroma and luma."""
    t = np.deg2rad(hue_deg)
    rot = np.array([[brightness, 0, 0],
                    [0, saturation * np.cos(t), -saturation * np.sin(t)],
                    [0, saturation * np.sin(t), saturation * np.cos(t)]])
    return (_YIQ2RGB @ rot @ _RGB2YIQ).astype(np.float32)


def jitter_colour(rgb: np.ndarray, rng: np.random.Generator, hue: float = 180.0, sat: tuple[float, float] = (0.6, 1.3),
                  bright: tuple[float, float] = (0.7, 1.25)) -> np.ndarray:
    """Random hue rotation within +-``hue`` degrees, saturation and brightness scaling."""
    m = colour_matrix(uniform(rng, -hue, hue), uniform(rng, *sat), uniform(rng, *bright))
    return np.clip(apply_matrix(as_rgb(rgb), m), 0.0, 1.0).astype(np.float32)


def apply_matrix(rgb: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``rgb @ m.T`` as three explicit multiply-adds (no BLAS: the same bits on every machine)."""
    r, g, b = rgb[..., 0:1], rgb[..., 1:2], rgb[..., 2:3]
    return r * m[:, 0] + g * m[:, 1] + b * m[:, 2]


def vertical_mix(h: int, w: int, top: np.ndarray, bottom: np.ndarray, y0: float, y1: float,
                 gamma: float = 1.0) -> np.ndarray:
    """A vertical gradient from ``top`` at row y0 to ``bottom`` at row y1 (clamped outside)."""
    t = np.clip((np.arange(h, dtype=np.float32) + 0.5 - y0) / max(y1 - y0, 1e-3), 0.0, 1.0) ** gamma
    col = top[None, :] * (1 - t[:, None]) + bottom[None, :] * t[:, None]
    return np.broadcast_to(col[:, None, :], (h, w, 3)).astype(np.float32).copy()


def downsample(arr: np.ndarray, f: int) -> np.ndarray:
    """Box-average an (f*h, f*w[, c]) array down by f."""
    if f == 1:
        return arr
    h, w = arr.shape[0] // f, arr.shape[1] // f
    acc = np.zeros((h, w) + arr.shape[2:], dtype=np.float32)
    for dy in range(f):
        for dx in range(f):
            acc += arr[dy:h * f:f, dx:w * f:f]
    return acc * np.float32(1.0 / (f * f))


# -- ground-plane perspective ---------------------------------------------------------------------------

@dataclass
class Ground:
    """Ground coordinates of an image's pixels below a horizon (see the module docstring)."""

    valid: np.ndarray  # bool (h, w): below the horizon
    X: np.ndarray  # lateral position, bottom-row pixels (0 at the vanishing column)
    D: np.ndarray  # depth, bottom-row pixels (grows towards the horizon)
    Zn: np.ndarray  # relative distance: 1 at the bottom row, -> inf at the horizon
    yh: float
    vx: float


def ground(h: int, w: int, yh: float, vx: float) -> Ground:
    ys = np.arange(h, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(w, dtype=np.float32)[None, :] + 0.5
    dy = ys - yh
    valid = np.broadcast_to(dy > 0.5, (h, w)).copy()
    dyc = np.maximum(dy, 0.5)
    base = max(h - yh, 1.0)
    zn = np.broadcast_to(base / dyc, (h, w)).astype(np.float32)
    X = ((xs - vx) * zn).astype(np.float32)
    D = (zn * base).astype(np.float32)
    return Ground(valid, X, D, zn, yh, vx)


@cache
def _pyramid(name: str) -> tuple[np.ndarray, ...]:
    levels = [np.asarray(source_array(name))]
    for _ in range(5):
        a = levels[-1]
        h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        levels.append(downsample(a[:h, :w], 2))
    for lv in levels:
        lv.setflags(write=False)
    return tuple(levels)


def ground_texture(g: Ground, name: str, scale: float, offset: tuple[float, float] = (0.0, 0.0),
                   aspect: float = 1.0) -> np.ndarray:
    """Look a source texture up on the ground plane at ``scale`` texels per bottom-row pixel.

    ``aspect`` > 1 stretches the texture along X (horizontal streaks). Rows pick a mip level by their
    vertical footprint. Pixels above the horizon get the texture's mean.
    """
    levels = _pyramid(name)
    h, w = g.valid.shape
    zn_row = g.Zn[:, 0]
    foot = scale * zn_row * np.sqrt(zn_row / max(aspect, 1e-3))
    lvl = np.clip(np.floor(np.log2(np.maximum(foot, 1.0))), 0, len(levels) - 1).astype(int)
    out = np.empty((h, w) + levels[0].shape[2:], dtype=np.float32)
    for li in np.unique(lvl):
        tex = levels[li]
        th, tw = tex.shape[:2]
        rows = lvl == li
        s = scale / 2**li
        r = (g.D[rows] * s + offset[0] / 2**li).astype(np.int64) % th
        c = (g.X[rows] * s / aspect + offset[1] / 2**li).astype(np.int64) % tw
        out[rows] = tex[r, c]
    mean = levels[-1].mean(axis=(0, 1))
    out[~g.valid] = mean
    return out


def haze(g: Ground, strength: float) -> np.ndarray:
    """Blend weight towards the horizon colour: 0 at the bottom, -> 1 at the horizon; 1 above it."""
    a = 1.0 - np.exp(-(g.Zn - 1.0) * strength)
    a[~g.valid] = 1.0
    return a.astype(np.float32)
