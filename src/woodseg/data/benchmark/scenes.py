"""Background scenes: the six class contexts and three kinds of neutral scene.

Contexts (each varies hue, brightness, texture scale, crop and layout per image):

* ``sky``     - blue / hazy / overcast / sunset gradient with fractal-noise clouds.
* ``runway``  - grey asphalt (gravel texture in perspective) with white centre dashes and edge lines,
  grass or apron beside it, sky and a distant skyline above the horizon.
* ``foliage`` - green-tinted grass texture as leaves, light patches, sky gaps, brown branches.
* ``water``   - tinted water with wave crests and ripple highlights in perspective, optional sky and shore.
* ``meadow``  - green (sometimes dry) grass in perspective below a horizon, optional tree line, flowers.
* ``rails``   - gravel ballast with wooden or concrete sleepers and two steel rails converging in
  perspective (sometimes a second track, sometimes curving), sky above when the horizon is in view.

Neutral scenes (none holds a class, and none is a class context): ``brick`` (tinted brick wall, sometimes
a pavement strip), ``indoor`` (painted wall, floor, window or door) and ``photo`` (a crop of one of the
shipped photographs: an astronaut, a cat, coffee, a rocket, galaxies, cells, a retina, a colour wheel, a
logo, a cameraman, coins, the moon, a temple, a flower).

Thin lines (rails, sleepers, runway markings) are rasterised at twice the target size and enter as
coverage fractions (anti-aliased). A scene also reports ``ground_top``: the row below which ground-standing objects (horse, train, boat, a parked
aeroplane) may stand, or None where objects may float anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from woodseg.data.benchmark.sources import PHOTOS
from woodseg.data.benchmark.textures import (
    as_rgb,
    crop_resize,
    downsample,
    fbm,
    fbm_1d,
    ground,
    ground_texture,
    haze,
    hsv,
    jitter_colour,
    resize_float,
    smoothstep,
    tint,
    uniform,
    vertical_mix,
)

GROUND_SS = 2
"""Thin converging lines (rails, sleepers, runway markings) are rasterised at twice the size and enter as
coverage fractions; the textures under them are looked up at the target size."""


@dataclass
class Scene:
    rgb: np.ndarray  # float32 (h, w, 3) in [0, 1]
    name: str
    detail: str
    ground_top: float | None


# -- shared pieces --------------------------------------------------------------------------------------

def _sky_palette(rng: np.random.Generator) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """(kind, zenith colour, horizon colour, cloud colour)."""
    kind = rng.choice(["clear", "hazy", "overcast", "sunset"], p=[0.45, 0.25, 0.15, 0.15])
    hue = uniform(rng, 195, 228)
    if kind == "clear":
        zen = hsv(hue, uniform(rng, 0.5, 0.8), uniform(rng, 0.6, 0.9))
        hor = hsv(hue, uniform(rng, 0.12, 0.35), uniform(rng, 0.88, 1.0))
        cloud = hsv(hue, 0.03, uniform(rng, 0.92, 1.0))
    elif kind == "hazy":
        zen = hsv(hue, uniform(rng, 0.25, 0.5), uniform(rng, 0.65, 0.88))
        hor = hsv(hue + uniform(rng, -10, 10), uniform(rng, 0.05, 0.2), uniform(rng, 0.8, 0.95))
        cloud = hsv(hue, 0.04, uniform(rng, 0.85, 0.97))
    elif kind == "overcast":
        v = uniform(rng, 0.55, 0.85)
        zen = hsv(hue, uniform(rng, 0.05, 0.18), v * uniform(rng, 0.8, 0.95))
        hor = hsv(hue, uniform(rng, 0.02, 0.1), min(1.0, v * uniform(rng, 1.0, 1.15)))
        cloud = hsv(hue, 0.03, min(1.0, v * uniform(rng, 0.9, 1.2)))
    else:
        zen = hsv(uniform(rng, 215, 260), uniform(rng, 0.35, 0.65), uniform(rng, 0.35, 0.65))
        hor = hsv(uniform(rng, 15, 45), uniform(rng, 0.45, 0.8), uniform(rng, 0.85, 1.0))
        cloud = hsv(uniform(rng, 0, 30), uniform(rng, 0.2, 0.45), uniform(rng, 0.7, 0.95))
    return str(kind), zen, hor, cloud


def _sky(rng: np.random.Generator, h: int, w: int, horizon: float) -> tuple[np.ndarray, str, np.ndarray]:
    """A sky filling (h, w) whose colour reaches the horizon colour at row ``horizon`` (may be below).

    Drawn at half resolution and upsampled bilinearly: gradients and soft clouds lose nothing.
    """
    if min(h, w) >= 64:
        small, kind, hor = _sky(rng, (h + 1) // 2, (w + 1) // 2, horizon / 2)
        rgb = np.stack([resize_float(small[..., c], h, w, Image.BILINEAR) for c in range(3)], axis=-1)
        return np.clip(rgb, 0, 1), kind, hor
    kind, zen, hor, cloud_col = _sky_palette(rng)
    top = -uniform(rng, 0.0, 0.6) * h
    rgb = vertical_mix(h, w, zen, hor, top, max(horizon, top + 1), gamma=uniform(rng, 0.6, 1.6))
    tilt = uniform(rng, -0.12, 0.12)
    rgb *= (1.0 + tilt * (np.linspace(-0.5, 0.5, w, dtype=np.float32)))[None, :, None]
    cover = {"clear": (0.5, 0.85), "hazy": (0.45, 0.8), "overcast": (0.15, 0.5), "sunset": (0.4, 0.8)}[kind]
    thr = uniform(rng, *cover)
    if rng.random() < 0.12:
        thr = 1.1  # cloudless
    c = fbm(rng, h, w, base=uniform(rng, 1.5, 4.0), octaves=5, persistence=0.55, stretch=uniform(rng, 1.0, 2.5))
    a = smoothstep(thr, thr + uniform(rng, 0.08, 0.3), c) * uniform(rng, 0.6, 1.0)
    shade = fbm(rng, h, w, base=uniform(rng, 2.0, 5.0), octaves=3)
    ccol = cloud_col[None, None, :] * (0.72 + 0.28 * shade[..., None])
    rgb = rgb * (1 - a[..., None]) + ccol * a[..., None]
    return np.clip(rgb, 0, 1).astype(np.float32), kind, hor


def _skyline(rng: np.random.Generator, rgb: np.ndarray, yh: float, haze_col: np.ndarray) -> str:
    """Paint a distant tree line, hills or buildings just above the horizon (in place). Returns its kind."""
    h, w = rgb.shape[:2]
    kind = str(rng.choice(["trees", "hills", "buildings", "none"], p=[0.4, 0.25, 0.15, 0.2]))
    if kind == "none" or yh <= 1:
        return "none"
    height = h * uniform(rng, 0.02, 0.14)
    if kind == "buildings":
        prof = np.zeros(w, dtype=np.float32)
        x = 0
        while x < w:
            bw = int(rng.integers(max(2, w // 30), max(3, w // 8)))
            prof[x:x + bw] = uniform(rng, 0.2, 1.0)
            x += bw
        col = hsv(uniform(rng, 190, 240), uniform(rng, 0.05, 0.2), uniform(rng, 0.35, 0.6))
    else:
        prof = fbm_1d(rng, w, base=uniform(rng, 2, 6) if kind == "trees" else uniform(rng, 0.5, 1.5),
                      octaves=5 if kind == "trees" else 3)
        prof = 0.3 + 0.7 * prof
        col = hsv(uniform(rng, 90, 150), uniform(rng, 0.25, 0.55), uniform(rng, 0.15, 0.4)) if kind == "trees" \
            else hsv(uniform(rng, 90, 220), uniform(rng, 0.15, 0.35), uniform(rng, 0.3, 0.55))
    col = col * 0.6 + haze_col * 0.4 * uniform(rng, 0.5, 1.0)
    top = yh - height * prof
    ys = np.arange(h, dtype=np.float32)[:, None] + 0.5
    a = np.clip(ys - top[None, :], 0.0, 1.0) * (ys < yh + 1)
    tex = 0.85 + 0.3 * fbm(rng, h, w, base=uniform(rng, 6, 14), octaves=2)
    band = col[None, None, :] * tex[..., None]
    rgb[:] = rgb * (1 - a[..., None]) + band * a[..., None]
    return kind


def _above_horizon(rng: np.random.Generator, h: int, w: int, yh: float) -> tuple[np.ndarray, np.ndarray, str]:
    """Sky (plus a skyline) for scenes with a horizon. Returns (rgb, horizon colour, skyline kind)."""
    sky, _, hor = _sky(rng, h, w, yh)
    kind = _skyline(rng, sky, yh, hor)
    return sky, hor, kind


def _paste_below(dst: np.ndarray, src: np.ndarray, yh: float) -> np.ndarray:
    h = dst.shape[0]
    a = np.clip(np.arange(h, dtype=np.float32) + 0.5 - yh, 0.0, 1.0)[:, None, None]
    return dst * (1 - a) + src * a


# -- contexts -------------------------------------------------------------------------------------------

def sky(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str, float | None]:
    rgb, kind, _ = _sky(rng, h, w, horizon=h * uniform(rng, 1.0, 2.5))
    return rgb, kind, None


def _fine_ground(h: int, w: int, yh: float, vx: float) -> tuple[np.ndarray, np.ndarray]:
    """Ground (X, D) at GROUND_SS x the resolution, in target-size units: for thin lines' coverage."""
    f = GROUND_SS
    g = ground(h * f, w * f, yh * f, vx * f)
    return g.X / f, g.D / f


def _cover(mask: np.ndarray) -> np.ndarray:
    """Fraction of each target pixel a supersampled boolean mask covers, as an (h, w, 1) weight."""
    return downsample(mask.astype(np.float32), GROUND_SS)[..., None]


def runway(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str, float | None]:
    yh = h * uniform(rng, 0.1, 0.45)
    vx = w * uniform(rng, 0.15, 0.85)
    rgb, hor, _ = _above_horizon(rng, h, w, yh)
    g = ground(h, w, yh, vx)
    X, D = _fine_ground(h, w, yh, vx)
    ax = np.abs(X)
    scale = uniform(rng, 1.5, 3.0)  # fine-grained asphalt
    asphalt_col = hsv(uniform(rng, 0, 360), uniform(rng, 0.0, 0.08), uniform(rng, 0.3, 0.55))
    asphalt = tint(ground_texture(g, "gravel", scale, (uniform(rng, 0, 512), uniform(rng, 0, 512))), asphalt_col,
                   contrast=uniform(rng, 0.4, 0.9))
    half = w * uniform(rng, 0.3, 0.9)
    if rng.random() < 0.6:
        side_col = hsv(uniform(rng, 65, 110), uniform(rng, 0.3, 0.6), uniform(rng, 0.3, 0.55))
        side = tint(ground_texture(g, "grass", scale * 0.35, (uniform(rng, 0, 512), 0)), side_col, 1.0)
        detail = "grass"
    else:
        side_col = hsv(uniform(rng, 0, 360), uniform(rng, 0.0, 0.06), uniform(rng, 0.5, 0.72))
        side = tint(ground_texture(g, "gravel", scale * 1.5, (0, uniform(rng, 0, 512))), side_col, 0.5)
        detail = "apron"
    on = _cover(ax < half)
    out = side * (1 - on) + asphalt * on
    skid = fbm(rng, h, w, base=uniform(rng, 2, 4), octaves=3, stretch=0.3)  # dark streaks along the runway
    out *= 1.0 - 0.25 * smoothstep(0.6, 0.9, skid)[..., None] * on
    white = hsv(uniform(rng, 30, 60), uniform(rng, 0.0, 0.15), uniform(rng, 0.82, 0.97))
    period = h * uniform(rng, 0.35, 0.8)
    cw = half * uniform(rng, 0.02, 0.04)
    marks = (ax < cw) & (np.mod(D, period) < period * uniform(rng, 0.45, 0.6))  # centre-line dashes
    edge_in = half * uniform(rng, 0.9, 0.95)
    marks |= (ax > edge_in) & (ax < edge_in + half * 0.03)  # edge lines
    if rng.random() < 0.3:  # threshold "piano keys" near the camera
        marks |= (np.mod(X + half, half / 6.0) < half / 12.0) & (D < h * uniform(rng, 1.2, 2.0)) & (ax < edge_in)
        detail += "+threshold"
    m = _cover(marks) * 0.9
    out = out * (1 - m) + white * m
    a = haze(g, uniform(rng, 0.03, 0.12))[..., None]
    out = out * (1 - a) + hor * a
    return _paste_below(rgb, out, yh), detail, yh


def rails(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str, float | None]:
    yh = h * uniform(rng, -0.8, 0.35)
    vx = w * uniform(rng, 0.2, 0.8)
    if yh > 1:
        rgb, hor, skyline = _above_horizon(rng, h, w, yh)
    else:
        rgb, hor, skyline = np.zeros((h, w, 3), np.float32), hsv(uniform(rng, 20, 60), 0.1, 0.7), "none"
    g = ground(h, w, yh, vx)
    X, D = _fine_ground(h, w, yh, vx)
    scale = uniform(rng, 1.0, 2.2)
    ballast_col = hsv(uniform(rng, 10, 45), uniform(rng, 0.08, 0.3), uniform(rng, 0.35, 0.62))
    out = tint(ground_texture(g, "gravel", scale, (uniform(rng, 0, 512), uniform(rng, 0, 512))), ballast_col,
               contrast=uniform(rng, 0.9, 1.5))
    gauge = w * uniform(rng, 0.3, 0.7)
    if rng.random() < 0.4:  # the track curves away
        X = X - uniform(rng, -1.0, 1.0) * gauge * (np.minimum(D, 8 * h) / (4.0 * h)) ** 2
    tracks = [0.0]
    if rng.random() < 0.3:
        tracks.append(float(rng.choice([-1, 1])) * gauge * uniform(rng, 1.9, 2.5))
    concrete = rng.random() < 0.35
    sl_col = hsv(uniform(rng, 0, 40), uniform(rng, 0.0, 0.08), uniform(rng, 0.5, 0.68)) if concrete else \
        hsv(uniform(rng, 15, 35), uniform(rng, 0.3, 0.55), uniform(rng, 0.18, 0.35))
    sleeper_tex = tint(ground_texture(g, "gravel", scale * 0.5, (0, uniform(rng, 0, 512)), aspect=4.0), sl_col, 0.5)
    spacing = gauge * uniform(rng, 0.45, 0.75)
    duty = uniform(rng, 0.3, 0.5)
    sl_half = gauge * uniform(rng, 0.72, 0.85)
    rail_w = gauge * uniform(rng, 0.04, 0.065)
    steel = hsv(uniform(rng, 20, 220), uniform(rng, 0.0, 0.12), uniform(rng, 0.28, 0.42))
    shine = hsv(uniform(rng, 20, 220), 0.03, uniform(rng, 0.7, 0.92))
    sleepers = np.zeros(X.shape, bool)
    shadow = np.zeros(X.shape, bool)
    rail = np.zeros(X.shape, bool)
    head = np.zeros(X.shape, bool)
    for t0 in tracks:
        xt = X - t0
        sleepers |= (np.abs(xt) < sl_half) & (np.mod(D + uniform(rng, 0, spacing), spacing) < spacing * duty)
        for side in (-0.5, 0.5):
            d = np.abs(xt - side * gauge)
            shadow |= d < rail_w * 1.8
            rail |= d < rail_w
            head |= d < rail_w * 0.4  # polished rail head
    c = _cover(sleepers)
    out = out * (1 - c) + sleeper_tex * c
    out *= 1.0 - 0.3 * _cover(shadow & ~rail)  # shadow beside the rails
    c = _cover(rail & ~head)
    out = out * (1 - c) + steel * c
    c = _cover(head)
    out = out * (1 - c) + shine * c
    a = haze(g, uniform(rng, 0.03, 0.1))[..., None]
    out = out * (1 - a) + hor * a
    detail = ("concrete" if concrete else "wood") + f"+{len(tracks)}track" + (f"+{skyline}" if yh > 1 else "")
    return _paste_below(rgb, out, yh), detail, max(yh, 0.0)


def water(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str, float | None]:
    yh = h * uniform(rng, -0.5, 0.45)
    if yh > 1:
        rgb, hor, skyline = _above_horizon(rng, h, w, yh)
    else:
        rgb, hor, skyline = np.zeros((h, w, 3), np.float32), hsv(uniform(rng, 190, 220), 0.2, 0.8), "none"
    family = str(rng.choice(["blue", "teal", "green", "navy"], p=[0.45, 0.25, 0.15, 0.15]))
    hue, s, v = {"blue": ((198, 222), (0.45, 0.8), (0.35, 0.65)), "teal": ((172, 195), (0.4, 0.75), (0.3, 0.6)),
                 "green": ((90, 150), (0.2, 0.45), (0.25, 0.5)), "navy": ((218, 238), (0.5, 0.85), (0.18, 0.35))}[family]
    near = hsv(uniform(rng, *hue), uniform(rng, *s), uniform(rng, *v))
    far = near * 0.5 + hor * 0.5
    g = ground(h, w, yh, w * uniform(rng, 0.2, 0.8))
    wave = np.zeros_like(g.D)
    for _ in range(6):
        lam = h * uniform(rng, 0.04, 0.2)
        ang = uniform(rng, -0.5, 0.5)
        wave += uniform(rng, 0.4, 1.0) * np.sin(2 * np.pi / lam * (g.D * np.cos(ang) + g.X * np.sin(ang) * 0.4)
                                                + uniform(rng, 0, 2 * np.pi))
    wave = wave / 6.0 / (1.0 + 0.05 * g.Zn)
    ripple = ground_texture(g, "gravel", uniform(rng, 0.8, 2.0), (uniform(rng, 0, 512), uniform(rng, 0, 512)),
                            aspect=uniform(rng, 3.0, 8.0))
    field = 0.55 * wave + 0.9 * (ripple - 0.5)
    field = (field - field.min()) / (np.ptp(field) + 1e-6)
    mix = np.clip((g.Zn - 1.0) / 6.0, 0, 1)[..., None]
    base = near * (1 - mix) + far * mix
    rgb_w = base * (0.7 + 0.6 * field[..., None])
    spec = smoothstep(uniform(rng, 0.72, 0.85), 0.97, field) * uniform(rng, 0.4, 0.9)
    if rng.random() < 0.3:  # sun glitter column
        xs = np.arange(w, dtype=np.float32)[None, :]
        spec = spec * (1 + 2.5 * np.exp(-(((xs - w * uniform(rng, 0.2, 0.8)) / (w * 0.12)) ** 2)))
    spec = np.clip(spec, 0, 1)[..., None]
    rgb_w = rgb_w * (1 - spec) + hor * 0.3 + spec * np.array([1, 1, 1], np.float32) * 0.7
    a = haze(g, uniform(rng, 0.04, 0.12))[..., None]
    rgb_w = rgb_w * (1 - a) + hor * a
    detail = family + (f"+{skyline}" if yh > 1 else "")
    return np.clip(_paste_below(rgb, rgb_w, yh), 0, 1), detail, max(yh, 0.0)


def foliage(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str, float | None]:
    leaves = crop_resize(rng, "grass", h, w, zoom=(0.35, 1.4), rotate90=True)
    green = hsv(uniform(rng, 70, 135), uniform(rng, 0.4, 0.85), uniform(rng, 0.25, 0.55))
    rgb = tint(leaves, green, contrast=uniform(rng, 1.0, 1.8))
    light = fbm(rng, h, w, base=uniform(rng, 1.5, 3.5), octaves=3)
    rgb *= (0.55 + 0.8 * light)[..., None]
    clusters = smoothstep(0.55, 0.8, fbm(rng, h, w, base=uniform(rng, 3, 7), octaves=3))
    warm = hsv(uniform(rng, 55, 85), uniform(rng, 0.5, 0.9), uniform(rng, 0.5, 0.8))
    rgb = rgb * (1 - 0.35 * clusters[..., None]) + 0.35 * clusters[..., None] * warm * (0.6 + 0.6 * as_rgb(leaves))
    detail = "leaves"
    if rng.random() < 0.5:
        sky_col = hsv(uniform(rng, 195, 225), uniform(rng, 0.05, 0.4), uniform(rng, 0.85, 1.0))
        thr = uniform(rng, 0.68, 0.85)
        gap = smoothstep(thr, thr + 0.05, fbm(rng, h, w, base=uniform(rng, 2, 5), octaves=4))[..., None]
        rgb = rgb * (1 - gap) + sky_col * gap
        detail += "+gaps"
    n_br = int(rng.integers(1, 5))
    if n_br:
        mask = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(mask)
        for _ in range(n_br):
            _branch(rng, draw, h, w, width=h * uniform(rng, 0.02, 0.06))
        bark_col = hsv(uniform(rng, 15, 35), uniform(rng, 0.25, 0.55), uniform(rng, 0.15, 0.35))
        bark = tint(crop_resize(rng, "gravel", h, w, zoom=(0.5, 1.0)), bark_col, 1.2)
        m = (np.asarray(mask, np.float32) / 255.0)[..., None]
        rgb = rgb * (1 - m) + bark * m
        detail += f"+{n_br}branches"
    return np.clip(rgb, 0, 1).astype(np.float32), detail, None


def _branch(rng: np.random.Generator, draw: ImageDraw.ImageDraw, h: int, w: int, width: float) -> None:
    side = int(rng.integers(0, 4))
    t = uniform(rng, 0.1, 0.9)
    x, y = [(t * w, 0.0), (w, t * h), (t * w, h), (0.0, t * h)][side]
    ang = [np.pi / 2, np.pi, -np.pi / 2, 0.0][side] + uniform(rng, -0.7, 0.7)
    seg = max(h, w) * uniform(rng, 0.12, 0.22)
    pts = [(x, y)]
    wd = width
    for _ in range(int(rng.integers(3, 7))):
        ang += uniform(rng, -0.5, 0.5)
        nx, ny = pts[-1][0] + seg * np.cos(ang), pts[-1][1] + seg * np.sin(ang)
        draw.line([pts[-1], (nx, ny)], fill=255, width=max(1, int(round(wd))))
        r = wd / 2
        draw.ellipse([nx - r, ny - r, nx + r, ny + r], fill=255)
        if rng.random() < 0.45 and wd > 2:  # twig
            ta = ang + float(rng.choice([-1, 1])) * uniform(rng, 0.5, 1.1)
            tl = seg * uniform(rng, 0.5, 1.1)
            draw.line([(nx, ny), (nx + tl * np.cos(ta), ny + tl * np.sin(ta))], fill=255,
                      width=max(1, int(round(wd * 0.5))))
        pts.append((nx, ny))
        wd *= uniform(rng, 0.7, 0.92)


def meadow(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str, float | None]:
    yh = h * uniform(rng, 0.12, 0.55)
    rgb, hor, skyline = _above_horizon(rng, h, w, yh)
    g = ground(h, w, yh, w * uniform(rng, 0.0, 1.0))
    dry = rng.random() < 0.2
    col = hsv(uniform(rng, 42, 60), uniform(rng, 0.4, 0.65), uniform(rng, 0.45, 0.7)) if dry else \
        hsv(uniform(rng, 70, 125), uniform(rng, 0.4, 0.8), uniform(rng, 0.3, 0.6))
    grass = tint(ground_texture(g, "grass", uniform(rng, 0.4, 1.2), (uniform(rng, 0, 512), uniform(rng, 0, 512))),
                 col, contrast=uniform(rng, 1.0, 1.6))
    patches = fbm(rng, h, w, base=uniform(rng, 1.5, 3.0), octaves=3)
    grass *= (0.7 + 0.55 * patches)[..., None]
    detail = ("dry" if dry else "green") + f"+{skyline}"
    if rng.random() < 0.3:
        dots = (rng.random((h, w)) < 0.012 / g.Zn) & g.valid
        fcol = [hsv(0, 0, 0.95), hsv(55, 0.8, 0.95), hsv(280, 0.5, 0.8), hsv(0, 0.7, 0.85)][int(rng.integers(0, 4))]
        grass[dots] = fcol
        detail += "+flowers"
    a = haze(g, uniform(rng, 0.04, 0.14))[..., None]
    grass = grass * (1 - a) + hor * a
    return _paste_below(rgb, grass, yh), detail, yh


# -- neutral scenes -------------------------------------------------------------------------------------

def brick(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str, float | None]:
    tex = crop_resize(rng, "brick", h, w, zoom=(1.0, 2.6), quarter=1)  # courses horizontal
    family = str(rng.choice(["red", "beige", "grey", "white"], p=[0.4, 0.25, 0.2, 0.15]))
    col = {"red": hsv(uniform(rng, 3, 25), uniform(rng, 0.45, 0.75), uniform(rng, 0.4, 0.65)),
           "beige": hsv(uniform(rng, 28, 45), uniform(rng, 0.2, 0.4), uniform(rng, 0.6, 0.8)),
           "grey": hsv(uniform(rng, 0, 360), uniform(rng, 0.0, 0.08), uniform(rng, 0.4, 0.7)),
           "white": hsv(uniform(rng, 0, 60), uniform(rng, 0.0, 0.08), uniform(rng, 0.82, 0.95))}[family]
    rgb = tint(tex, col, contrast=uniform(rng, 1.0, 1.8))
    xs = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    ys = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    rgb *= (1.0 + uniform(rng, -0.3, 0.3) * xs + uniform(rng, -0.3, 0.3) * ys)[..., None]
    top = None
    if rng.random() < 0.4:
        yf = h * uniform(rng, 0.65, 0.9)
        pav = tint(crop_resize(rng, "gravel", h, w, zoom=(0.5, 1.2)),
                   hsv(uniform(rng, 0, 360), uniform(rng, 0, 0.06), uniform(rng, 0.4, 0.65)), 0.8)
        rgb = _paste_below(rgb, pav, yf)
        top = yf
        family += "+pavement"
    return np.clip(rgb, 0, 1).astype(np.float32), family, top


def indoor(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str, float | None]:
    wall = hsv(uniform(rng, 0, 360), uniform(rng, 0.03, 0.35), uniform(rng, 0.55, 0.92))
    rgb = np.broadcast_to(wall, (h, w, 3)).astype(np.float32).copy()
    xs = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    ys = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    rgb *= (1.0 + uniform(rng, -0.35, 0.35) * xs + uniform(rng, -0.3, 0.2) * ys
            + 0.08 * (fbm(rng, h, w, base=3, octaves=3) - 0.5))[..., None]
    yf = h * uniform(rng, 0.55, 0.88)
    detail = []
    if rng.random() < 0.55:
        x0 = w * uniform(rng, -0.1, 0.7)
        bw = w * uniform(rng, 0.2, 0.45)
        draw_mask = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(draw_mask)
        frame = max(1, int(h * 0.02))
        if rng.random() < 0.6:  # window
            y0, y1 = h * uniform(rng, 0.05, 0.25), yf - h * uniform(rng, 0.12, 0.3)
            light = vertical_mix(h, w, hsv(uniform(rng, 190, 220), uniform(rng, 0.1, 0.35), 0.98),
                                 hsv(uniform(rng, 40, 200), uniform(rng, 0.02, 0.15), 0.9), y0, y1)
            d.rectangle([x0, y0, x0 + bw, y1], fill=255)
            m = (np.asarray(draw_mask, np.float32) / 255)[..., None]
            rgb = rgb * (1 - m) + light * m
            fm = Image.new("L", (w, h), 0)
            fd = ImageDraw.Draw(fm)
            fd.rectangle([x0, y0, x0 + bw, y1], outline=255, width=frame)
            fd.line([(x0 + bw / 2, y0), (x0 + bw / 2, y1)], fill=255, width=frame)
            fd.line([(x0, (y0 + y1) / 2), (x0 + bw, (y0 + y1) / 2)], fill=255, width=frame)
            fcol = hsv(uniform(rng, 0, 360), uniform(rng, 0, 0.2), float(rng.choice([uniform(rng, 0.1, 0.3),
                                                                                        uniform(rng, 0.85, 0.97)])))
            fmv = (np.asarray(fm, np.float32) / 255)[..., None]
            rgb = rgb * (1 - fmv) + fcol * fmv
            detail.append("window")
        else:  # door
            y0 = yf - h * uniform(rng, 0.45, 0.7)
            d.rectangle([x0, y0, x0 + bw * 0.8, yf], fill=255)
            dcol = hsv(uniform(rng, 15, 40), uniform(rng, 0.1, 0.6), uniform(rng, 0.25, 0.8))
            door = tint(crop_resize(rng, "gravel", h, w, zoom=(0.5, 1.0)), dcol, 0.4)
            m = (np.asarray(draw_mask, np.float32) / 255)[..., None]
            rgb = rgb * (1 - m) + door * m
            detail.append("door")
    floor_kind = str(rng.choice(["wood", "carpet", "tiles"]))
    g = ground(h, w, yf - h * uniform(rng, 0.3, 1.2), w * uniform(rng, 0.2, 0.8))
    if floor_kind == "wood":
        fcol = hsv(uniform(rng, 18, 40), uniform(rng, 0.35, 0.65), uniform(rng, 0.3, 0.6))
        floor = tint(ground_texture(g, "gravel", uniform(rng, 0.5, 1.0), (0, uniform(rng, 0, 512)), aspect=0.12),
                     fcol, 1.0)
    elif floor_kind == "carpet":
        fcol = hsv(uniform(rng, 0, 360), uniform(rng, 0.1, 0.5), uniform(rng, 0.25, 0.6))
        floor = tint(ground_texture(g, "grass", uniform(rng, 2.0, 4.0), (uniform(rng, 0, 512), 0)), fcol, 0.5)
    else:
        fcol = hsv(uniform(rng, 0, 360), uniform(rng, 0.0, 0.15), uniform(rng, 0.55, 0.85))
        floor = tint(ground_texture(g, "gravel", uniform(rng, 0.3, 0.6), (uniform(rng, 0, 512), 0)), fcol, 0.4)
        tile = h * uniform(rng, 0.2, 0.4)
        grid = (np.mod(g.X, tile) < tile * 0.05) | (np.mod(g.D, tile) < tile * 0.05)
        floor[grid] *= 0.6
    rgb = _paste_below(rgb, floor, yf)
    board = (np.abs(np.arange(h, dtype=np.float32) + 0.5 - yf) < h * 0.015)[:, None, None]
    bcol = hsv(uniform(rng, 0, 360), uniform(rng, 0, 0.15), uniform(rng, 0.2, 0.95))
    rgb = np.where(board, bcol, rgb)
    detail.append(floor_kind)
    return np.clip(rgb, 0, 1).astype(np.float32), "+".join(detail), yf


def photo(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str, float | None]:
    name = str(rng.choice(PHOTOS))
    rgb = as_rgb(crop_resize(rng, name, h, w, zoom=(0.8, 4.0)))
    rgb = jitter_colour(rgb, rng, hue=15.0, sat=(0.8, 1.2), bright=(0.85, 1.15))
    return rgb, name, None


SCENES: dict[str, Callable[[np.random.Generator, int, int], tuple[np.ndarray, str, float | None]]] = {
    "sky": sky, "runway": runway, "foliage": foliage, "water": water, "meadow": meadow, "rails": rails,
    "brick": brick, "indoor": indoor, "photo": photo,
}  # fmt: skip


def render_scene(name: str, rng: np.random.Generator, h: int, w: int) -> Scene:
    """Render a scene at (h, w)."""
    rgb, detail, top = SCENES[name](rng, h, w)
    return Scene(np.clip(rgb, 0.0, 1.0).astype(np.float32), name, detail, top)
