"""Class-consistent surface materials for the objects (benchmark v1.1).

Real objects look like their class beyond their outline: horses have fur, birds feathers, aeroplanes
painted panels, trains liveries with bands and rivets. A CNN trained from scratch on a few hundred images
cannot learn a class from its silhouette alone, so in v1.0 (objects filled with random photo crops) the
classifier learned nothing but the context. Here every class has its own *pattern*, while *colours* come
from palettes that overlap across classes (greys, whites, blacks, browns and saturated paints appear in
several), so colour alone still does not give the class away. Each pattern is randomised per object
(scale, orientation, contrast, colour).
"""

from __future__ import annotations

import numpy as np

from woodseg.data.benchmark.textures import fbm, hsv, uniform

# (hue degrees, saturation, value) palettes; shared entries are deliberate.
_GREYS = [(0, 0.0, 0.15), (0, 0.0, 0.45), (0, 0.0, 0.7), (0, 0.0, 0.92)]
_PAINTS = [(0, 0.75, 0.75), (210, 0.7, 0.7), (120, 0.55, 0.55), (50, 0.8, 0.85), (280, 0.5, 0.6), (20, 0.8, 0.8)]
_EARTH = [(28, 0.65, 0.45), (25, 0.55, 0.28), (35, 0.35, 0.65), (20, 0.4, 0.15)]
PALETTES: dict[str, list[tuple[float, float, float]]] = {
    "aeroplane": _GREYS + _PAINTS[:3],
    "bird": _EARTH + _GREYS[:2] + _PAINTS[1:4],
    "boat": _GREYS[2:] + _PAINTS + _EARTH[:1],
    "horse": _EARTH + _GREYS[::3],
    "train": _PAINTS + _GREYS[1:3],
    "tvmonitor": _GREYS[:3] + _EARTH[3:],
}


def _colour(rng: np.random.Generator, cls: str) -> np.ndarray:
    pal = PALETTES[cls]
    h, s, v = pal[int(rng.integers(len(pal)))]
    return hsv((h + uniform(rng, -12, 12)) % 360, float(np.clip(s * uniform(rng, 0.8, 1.2), 0, 1)),
               float(np.clip(v * uniform(rng, 0.85, 1.15), 0, 1)))


def _grid(h: int, w: int, rng: np.random.Generator, angle_jitter: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = uniform(rng, -angle_jitter, angle_jitter)
    return yy * np.cos(a) + xx * np.sin(a), xx * np.cos(a) - yy * np.sin(a)


def material(cls: str, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An (h, w, 3) float32 surface in [0, 1] for an object of class ``cls``."""
    base = _colour(rng, cls)
    y, x = _grid(h, w, rng)
    n = max(h, w)
    if cls == "horse":  # fur: fine streaky noise, darker mane/leg shading
        fur = fbm(rng, h, w, base=n / 6, octaves=2, stretch=0.35)
        shade = 0.72 + 0.45 * fur
        pattern = shade[..., None] * base
    elif cls == "bird":  # feathers: overlapping scallops
        period = uniform(rng, 3.0, 5.5)
        scallop = np.abs(np.sin(x / period + 0.8 * np.sin(y / period))) ** 0.6
        second = _colour(rng, cls)
        mix = (0.55 + 0.45 * scallop)[..., None]
        pattern = base * mix + second * (1 - mix) * 0.35
    elif cls == "aeroplane":  # painted panels with rivet lines and a glossy highlight
        pw = uniform(rng, 5.0, 9.0)
        lines = ((np.mod(x, pw) < 0.9) | (np.mod(y, pw * 1.6) < 0.9)).astype(np.float32)
        gloss = np.exp(-((y / max(h, 1) - uniform(rng, 0.2, 0.45)) ** 2) / 0.02)
        pattern = base * (1 - 0.35 * lines[..., None]) + 0.35 * gloss[..., None]
    elif cls == "boat":  # hull planks with a contrasting waterline band
        plank = uniform(rng, 2.5, 4.5)
        grain = 0.85 + 0.15 * np.sin(y / plank * np.pi) ** 2
        band = (np.abs(y / max(h, 1) - uniform(rng, 0.6, 0.8)) < 0.07).astype(np.float32)[..., None]
        pattern = base * grain[..., None] * (1 - band) + _colour(rng, cls) * band
    elif cls == "train":  # livery: two-tone body with a stripe and rivets
        stripe_y = uniform(rng, 0.45, 0.7)
        stripe = (np.abs(y / max(h, 1) - stripe_y) < 0.08).astype(np.float32)[..., None]
        rivets = ((np.mod(x, 6.0) < 1.0) & (np.mod(y, 6.0) < 1.0)).astype(np.float32)[..., None]
        lower = (y / max(h, 1) > stripe_y).astype(np.float32)[..., None]
        second = _colour(rng, cls)
        pattern = base * (1 - lower) + second * lower * 0.9
        pattern = pattern * (1 - stripe) + np.array([0.95, 0.9, 0.3], np.float32) * stripe * uniform(rng, 0.6, 1.0)
        pattern = pattern * (1 - 0.3 * rivets)
    else:  # tvmonitor: matte plastic with a faint vertical sheen
        sheen = 0.9 + 0.15 * np.sin(x / max(w, 1) * np.pi)
        pattern = base * sheen[..., None]
    noise = fbm(rng, h, w, base=3.0, octaves=2)
    pattern = pattern * (0.9 + 0.2 * noise)[..., None]
    return np.clip(pattern, 0.0, 1.0).astype(np.float32)
