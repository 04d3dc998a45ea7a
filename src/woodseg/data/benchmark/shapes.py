"""Object and distractor silhouettes: per-class parametric shapes with random proportions and pose.

A shape is drawn as vector primitives in unit space, mirrored and rotated as vectors, rasterised at 4x
supersampling into up to four layers, then box-averaged to the target size (:class:`Sprite`):

* ``body``   - the silhouette (the object's alpha; the mask is ``alpha >= 0.5``),
* ``dark``   - parts painted darker (windows, wheels, bezels, eyes, folded wings, hull stripes),
* ``light``  - parts painted pale (sails, headlights, livery stripes, window rows on ships),
* ``screen`` - where a monitor shows a picture.

Parts only shade the fill: the class is carried by the silhouette and its part layout, never by a colour.

Classes and their variation (all: random proportions, mirror half the time, rotation within
+-``max_rotation_deg``):

* aeroplane - side view (fuselage, swept fin, tailplane, edge-on wing, optional engine, window row,
  cockpit, optional landing gear) or planform seen from below (swept wings with taper, tailplane, 2 or 4
  engines).
* bird      - perched side view (tilted body, head, beak of random length, tail, optional legs, folded
  wing, eye) or in flight seen from below (body, head, tail fan, two wings with elbow and tip angles).
* boat      - side view hull with sheer and raked bow, then a sailboat (mast, mainsail, jib), motorboat
  (cabin, windscreen, windows) or ship (stacked superstructure, funnel, portholes).
* horse     - scikit-image's real horse silhouette, with the head and neck turned about the withers
  (from raised to grazing), random aspect and shear, optional darker legs/tail.
* train     - side view (1-2 cars, sloped or blunt nose, window band, doors, bogies and wheels,
  optional pantograph) or three-quarter view (front face with windscreen and headlights plus a side
  receding in perspective).
* tvmonitor - flat panel (thin bezel, optional stand) or CRT (thick bezel, rounded screen, buttons);
  the screen shows a photo crop or is switched off.

Distractors (never labelled): rock, post (optionally with a sign), ball, box, bush, cone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache

import numpy as np
from PIL import Image, ImageDraw

from woodseg.data.benchmark.sources import horse_silhouette
from woodseg.data.benchmark.textures import uniform

SS = 4
LAYERS = ("body", "dark", "light", "screen")


@dataclass
class Sprite:
    """A rasterised shape: float32 maps in [0, 1], all of one size."""

    alpha: np.ndarray
    dark: np.ndarray
    light: np.ndarray
    screen: np.ndarray
    kind: str
    view: str
    pose: str  # VOC pose word: Left, Right, Frontal, Unspecified

    @property
    def shape(self) -> tuple[int, int]:
        return self.alpha.shape  # type: ignore[return-value]


@cache
def _circle(n: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.cos(t), np.sin(t)


@dataclass
class Drawing:
    """Vector primitives in unit coordinates (y down); the body layer's extent sets the scale."""

    prims: list[tuple[str, str, object]] = field(default_factory=list)

    def poly(self, pts: list[tuple[float, float]], layer: str = "body") -> None:
        self.prims.append((layer, "poly", np.asarray(pts, dtype=np.float64).reshape(-1, 2)))

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, angle_deg: float = 0.0, layer: str = "body",
                n: int = 32) -> None:
        cos_t, sin_t = _circle(n)
        a = np.deg2rad(angle_deg)
        x, y = rx * cos_t, ry * sin_t
        pts = np.stack([cx + x * np.cos(a) - y * np.sin(a), cy + x * np.sin(a) + y * np.cos(a)], axis=1)
        self.prims.append((layer, "poly", pts))

    def rect(self, x0: float, y0: float, x1: float, y1: float, layer: str = "body") -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], layer)

    def rrect(self, x0: float, y0: float, x1: float, y1: float, r: float, layer: str = "body",
              r_bottom: float | None = None) -> None:
        """Rounded rectangle (top corners radius r, bottom corners r_bottom, default r)."""
        rb = r if r_bottom is None else r_bottom
        pts: list[tuple[float, float]] = []
        for cx, cy, rad, a0 in ((x1 - r, y0 + r, r, -90), (x1 - rb, y1 - rb, rb, 0), (x0 + rb, y1 - rb, rb, 90),
                                (x0 + r, y0 + r, r, 180)):
            for a in np.deg2rad(np.linspace(a0, a0 + 90, 7)):
                pts.append((cx + rad * np.cos(a), cy + rad * np.sin(a)))
        self.poly(pts, layer)

    def line(self, pts: list[tuple[float, float]], width: float, layer: str = "body") -> None:
        self.prims.append((layer, "line", (np.asarray(pts, dtype=np.float64).reshape(-1, 2), float(width))))

    def bounds(self) -> tuple[float, float, float, float]:
        lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
        for layer, kind, data in self.prims:
            if layer != "body":
                continue
            pts, pad = (data, 0.0) if kind == "poly" else (data[0], data[1] / 2)  # type: ignore[index]
            lo = np.minimum(lo, pts.min(axis=0) - pad)  # type: ignore[union-attr]
            hi = np.maximum(hi, pts.max(axis=0) + pad)  # type: ignore[union-attr]
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def rasterize(self, size_px: float, flip: bool = False, angle: float = 0.0) -> dict[str, Image.Image]:
        """Layers at SS x the size where the body's longer side is ``size_px`` (measured before the pose),
        mirrored if ``flip`` and rotated ``angle`` degrees counter-clockwise: the pose is applied to the
        vertices, so no raster is resampled."""
        x0, y0, x1, y1 = self.bounds()
        scale = size_px * SS / max(x1 - x0, y1 - y0, 1e-6)
        t = np.deg2rad(angle)
        m = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]]) @ np.diag([-1.0 if flip else 1.0, 1.0])
        m = m * scale
        posed = []
        for layer, kind, data in self.prims:
            pts, width = (data, 0.0) if kind == "poly" else data  # type: ignore[misc]
            q = pts @ m.T
            posed.append((layer, kind, q, width * scale))
        body = [q for layer, _, q, _ in posed if layer == "body"]
        allq = np.concatenate(body)
        widest = max([wd for layer, kind, _, wd in posed if layer == "body" and kind == "line"], default=0.0)
        lo = allq.min(axis=0) - widest / 2
        hi = allq.max(axis=0) + widest / 2
        pad = 2 * SS
        w = int(np.ceil(hi[0] - lo[0])) + 2 * pad
        h = int(np.ceil(hi[1] - lo[1])) + 2 * pad
        layers = {name: Image.new("L", (w, h), 0) for name in LAYERS}
        draws = {name: ImageDraw.Draw(im) for name, im in layers.items()}
        shift = pad - lo
        for layer, kind, q, wd in posed:
            d = draws[layer]
            q = q + shift
            pts = q.ravel().tolist()
            if kind == "poly":
                d.polygon(pts, fill=255)
            else:
                wpx = max(1, int(round(wd)))
                d.line(pts, fill=255, width=wpx, joint="curve")
                r = wpx / 2
                for px, py in (q[0], q[-1]):
                    d.ellipse([px - r, py - r, px + r, py + r], fill=255)
        return layers


def finish(layers: dict[str, Image.Image], kind: str, view: str, pose: str) -> Sprite:
    """Reduce every layer by SS (box average) and crop them to the body."""
    body = layers["body"]
    bbox = body.getbbox()
    if bbox is None:
        bbox = (0, 0, SS, SS)
    x0, y0, x1, y1 = bbox
    x0, y0 = x0 - x0 % SS, y0 - y0 % SS
    x1, y1 = x1 + (-x1) % SS, y1 + (-y1) % SS
    out: dict[str, np.ndarray] = {}
    for name in LAYERS:
        im = layers[name]
        if name != "body" and im.getbbox() is None:
            continue
        out[name] = np.asarray(im.crop((x0, y0, x1, y1)).reduce(SS), dtype=np.float32) / 255.0
    alpha = out["body"]
    zeros = np.zeros_like(alpha)
    return Sprite(alpha, np.minimum(out.get("dark", zeros), alpha), np.minimum(out.get("light", zeros), alpha),
                  np.minimum(out.get("screen", zeros), alpha), kind, view, pose)


def _pose(flip: bool, facing_right: bool = True) -> str:
    return "Right" if facing_right != flip else "Left"


# -- classes --------------------------------------------------------------------------------------------

def aeroplane(rng: np.random.Generator, on_ground: bool) -> tuple[Drawing, str, str]:
    d = Drawing()
    if on_ground or rng.random() < 0.5:
        fh = uniform(rng, 0.07, 0.12)
        c = 0.0
        top, bot = c - fh / 2, c + fh / 2
        up = fh * uniform(rng, 0.3, 0.6)
        nose_r = uniform(rng, 0.08, 0.14)
        pts = [(0.03, top), (0.88 - nose_r + 0.12, top)]
        for a in np.linspace(-np.pi / 2, np.pi / 2, 9):
            pts.append((1.0 - nose_r + nose_r * np.cos(a), c + fh / 2 * np.sin(a)))
        pts += [(0.32, bot), (0.08, top + up), (0.02, top + up * 0.5)]
        d.poly(pts)
        fin_h = uniform(rng, 0.12, 0.22)
        sweep = uniform(rng, 0.04, 0.1)
        d.poly([(0.03, top + 0.005), (0.03 + sweep, top - fin_h), (0.1 + sweep, top - fin_h), (0.22, top + 0.005)])
        d.poly([(0.02, c - 0.005), (0.14, c - 0.01), (0.16, c + 0.005), (0.03, c + 0.012)])  # tailplane
        wy = c + fh * 0.25
        ws = uniform(rng, 0.05, 0.12)
        d.poly([(0.38, wy), (0.56, wy), (0.46 - ws * 0.5, wy + ws), (0.33 - ws * 0.5, wy + ws)])
        if rng.random() < 0.7:
            d.ellipse(0.5, bot + 0.02, uniform(rng, 0.05, 0.08), uniform(rng, 0.02, 0.03))
        for x in np.arange(0.25, 0.82, uniform(rng, 0.022, 0.035)):
            d.ellipse(float(x), c - fh * 0.12, fh * 0.11, fh * 0.14, layer="dark", n=8)
        d.poly([(0.9, c - fh * 0.05), (0.93, c - fh * 0.35), (0.97, c - fh * 0.3), (0.97, c - fh * 0.05)], "dark")
        if rng.random() < 0.5:
            d.rect(0.05, c + fh * 0.05, 0.9, c + fh * 0.2, layer="light")
        if on_ground or rng.random() < 0.3:  # landing gear
            for gx in (0.45, 0.85):
                d.line([(gx, bot), (gx, bot + 0.05)], 0.012)
                d.ellipse(gx, bot + 0.055, 0.02, 0.02)
                d.ellipse(gx, bot + 0.055, 0.012, 0.012, layer="dark")
        return d, "side", "side"
    fw = uniform(rng, 0.06, 0.1)
    c = 0.0
    d.ellipse(0.5, c, 0.5, fw / 2)
    span = uniform(rng, 0.8, 1.1)
    root0, root1 = uniform(rng, 0.38, 0.45), uniform(rng, 0.58, 0.66)
    sweep = uniform(rng, 0.05, 0.25)
    taper = uniform(rng, 0.25, 0.6)
    tip_chord = (root1 - root0) * taper
    for s in (-1, 1):
        d.poly([(root1, c), (root1 - sweep, c + s * span / 2), (root1 - sweep - tip_chord, c + s * span / 2),
                (root0, c)])
        d.poly([(0.14, c), (0.1 - sweep * 0.3, c + s * span * 0.18), (0.04 - sweep * 0.3, c + s * span * 0.18),
                (0.03, c)])
        n_eng = 2 if rng.random() < 0.6 else 1
        for k in range(n_eng):
            f = (k + 1) / (n_eng + 1) * 0.8
            ex = root1 - sweep * f + 0.02
            d.ellipse(ex, c + s * span / 2 * f, 0.05, 0.022, layer="body")
            d.ellipse(ex + 0.02, c + s * span / 2 * f, 0.015, 0.015, layer="dark", n=10)
    d.ellipse(0.94, c, 0.03, fw * 0.3, layer="dark", n=12)
    return d, "below", "below"


def bird(rng: np.random.Generator, on_ground: bool) -> tuple[Drawing, str, str]:
    d = Drawing()
    if rng.random() < 0.6:  # perched, side view, facing right
        tilt = uniform(rng, -35, -5)
        rx, ry = uniform(rng, 0.26, 0.34), uniform(rng, 0.13, 0.2)
        cx, cy = 0.45, 0.5
        a = np.deg2rad(tilt)
        d.ellipse(cx, cy, rx, ry, tilt)
        fx, fy = cx + rx * 0.85 * np.cos(a), cy + rx * 0.85 * np.sin(a)
        neck = uniform(rng, 0.0, 0.12) if rng.random() < 0.3 else 0.0
        hr = uniform(rng, 0.08, 0.12)
        hx, hy = fx + 0.02, fy - hr * 0.6 - neck
        if neck:
            d.line([(fx - 0.03, fy), (hx, hy)], hr * 1.1)
        d.ellipse(hx, hy, hr, hr * 0.92)
        bl = uniform(rng, 0.05, 0.2)
        bt = uniform(rng, -15, 25)
        ba = np.deg2rad(bt)
        d.poly([(hx + hr * 0.8, hy - hr * 0.3), (hx + hr * 0.8 + bl * np.cos(ba), hy + bl * np.sin(ba)),
                (hx + hr * 0.75, hy + hr * 0.3)])
        d.ellipse(hx + hr * 0.35, hy - hr * 0.2, hr * 0.18, hr * 0.18, layer="dark", n=10)
        bx, by = cx - rx * 0.85 * np.cos(a), cy - rx * 0.85 * np.sin(a)
        tl = uniform(rng, 0.12, 0.3)
        ta = a + np.deg2rad(uniform(rng, 10, 45))
        d.poly([(bx + 0.03, by - 0.05), (bx - tl * np.cos(ta) - 0.03, by - tl * np.sin(ta) + 0.08),
                (bx - tl * np.cos(ta) + 0.02, by - tl * np.sin(ta) + 0.12), (bx + 0.06, by + 0.04)])
        if rng.random() < 0.7:
            d.ellipse(cx - 0.03, cy - 0.01, rx * 0.7, ry * 0.65, tilt + uniform(rng, -8, 8), layer="dark")
        if rng.random() < 0.8:
            ll = uniform(rng, 0.08, 0.25)
            for lx in (cx - 0.03, cx + 0.05):
                d.line([(lx, cy + ry * 0.7), (lx + 0.02, cy + ry * 0.7 + ll)], 0.018)
                d.line([(lx - 0.03, cy + ry * 0.7 + ll), (lx + 0.07, cy + ry * 0.7 + ll)], 0.014)
        return d, "perched", "side"
    # flying, seen from below: head up
    d.ellipse(0.5, 0.5, uniform(rng, 0.05, 0.08), uniform(rng, 0.16, 0.22))
    hr = uniform(rng, 0.045, 0.07)
    d.ellipse(0.5, 0.3, hr, hr)
    d.poly([(0.5 - 0.015, 0.3 - hr * 0.8), (0.5, 0.3 - hr - uniform(rng, 0.02, 0.08)), (0.5 + 0.015, 0.3 - hr * 0.8)])
    tw = uniform(rng, 0.04, 0.1)
    d.poly([(0.47, 0.66), (0.5 - tw, 0.82), (0.5 + tw, 0.82), (0.53, 0.66)])
    elbow_up, tip_up = uniform(rng, -0.05, 0.15), uniform(rng, -0.12, 0.22)
    span = uniform(rng, 0.38, 0.5)
    chord = uniform(rng, 0.07, 0.12)
    dark_tips = rng.random() < 0.5
    for s in (-1, 1):
        sh = (0.5 + s * 0.04, 0.44)
        el = (0.5 + s * span * 0.45, 0.44 - elbow_up)
        tip = (0.5 + s * span, 0.44 - tip_up)
        d.poly([sh, el, tip, (tip[0] - s * chord * 0.6, tip[1] + chord * 0.5), (el[0], el[1] + chord),
                (0.5 + s * 0.04, 0.44 + chord * 1.2)])
        if dark_tips:
            d.poly([tip, (tip[0] - s * chord * 0.6, tip[1] + chord * 0.5),
                    (tip[0] - s * span * 0.25, tip[1] + chord * 0.6), (tip[0] - s * span * 0.2, tip[1])], "dark")
    return d, "flying", "Frontal"


def boat(rng: np.random.Generator, on_ground: bool) -> tuple[Drawing, str, str]:
    d = Drawing()
    hh = uniform(rng, 0.08, 0.18)
    yd = 0.0
    rise = uniform(rng, 0.02, 0.08)
    rake = uniform(rng, 0.08, 0.2)
    stern = uniform(rng, 0.0, 0.06)
    d.poly([(0.0, yd), (0.5, yd - rise * 0.2), (1.0, yd - rise), (1.0 - rake, yd + hh), (stern + 0.04, yd + hh),
            (stern, yd + hh * 0.4)])
    if rng.random() < 0.6:
        d.poly([(stern + 0.01, yd + hh * 0.7), (1.0 - rake * 0.3, yd + hh * 0.7 - rise * 0.3),
                (1.0 - rake * 0.6, yd + hh * 0.85), (stern + 0.03, yd + hh * 0.85)], str(rng.choice(["dark", "light"])))
    kind = str(rng.choice(["sail", "motor", "ship"], p=[0.4, 0.35, 0.25]))
    if kind == "sail":
        mx = uniform(rng, 0.4, 0.55)
        mh = uniform(rng, 0.5, 0.9)
        d.line([(mx, yd), (mx, yd - mh)], 0.014)
        boom = uniform(rng, 0.25, 0.4)
        d.poly([(mx - 0.005, yd - mh * 0.95), (mx - 0.005, yd - 0.06), (mx - boom, yd - 0.05)])
        d.poly([(mx - 0.005, yd - mh * 0.95), (mx - 0.005, yd - 0.06), (mx - boom, yd - 0.05)], "light")
        if rng.random() < 0.8:
            d.poly([(mx + 0.01, yd - mh * 0.85), (0.95, yd - rise * 0.9 - 0.01), (mx + 0.03, yd - 0.05)])
            d.poly([(mx + 0.01, yd - mh * 0.85), (0.95, yd - rise * 0.9 - 0.01), (mx + 0.03, yd - 0.05)], "light")
    elif kind == "motor":
        x0, x1 = uniform(rng, 0.2, 0.35), uniform(rng, 0.55, 0.7)
        ch = uniform(rng, 0.07, 0.14)
        d.poly([(x0, yd + 0.01), (x0, yd - ch), (x1 - ch * 0.6, yd - ch), (x1, yd + 0.01)])
        for x in np.arange(x0 + 0.04, x1 - ch * 0.6, 0.07):
            d.rect(float(x), yd - ch * 0.75, float(x) + 0.045, yd - ch * 0.35, "dark")
        d.poly([(x1 - ch * 0.55, yd - ch * 0.9), (x1 - 0.01, yd - 0.005), (x1 - ch * 0.45, yd - 0.005)], "dark")
    else:
        x0, x1 = uniform(rng, 0.15, 0.3), uniform(rng, 0.55, 0.75)
        lv = uniform(rng, 0.06, 0.1)
        d.rect(x0, yd - lv, x1, yd + 0.01)
        if rng.random() < 0.7:
            d.rect(x0 + 0.05, yd - 2 * lv, x1 - 0.08, yd - lv + 0.005)
        fx = (x0 + x1) / 2 + uniform(rng, -0.1, 0.05)
        d.poly([(fx - 0.03, yd - lv), (fx - 0.02, yd - 2.8 * lv), (fx + 0.04, yd - 2.8 * lv), (fx + 0.04, yd - lv)])
        for x in np.arange(0.08, 0.85, 0.05):
            d.ellipse(float(x), yd + hh * 0.3, 0.012, 0.012, layer="dark", n=8)
        for x in np.arange(x0 + 0.02, x1 - 0.02, 0.035):
            d.rect(float(x), yd - lv * 0.7, float(x) + 0.02, yd - lv * 0.35, "dark")
    return d, kind, "side"


def train(rng: np.random.Generator, on_ground: bool) -> tuple[Drawing, str, str]:
    d = Drawing()
    if rng.random() < 0.55:  # side view, moving right
        n_cars = 1 if rng.random() < 0.55 else 2
        ch = uniform(rng, 0.22, 0.34)
        gap = 0.03
        L = 1.0
        x = 0.0
        nose = str(rng.choice(["sloped", "blunt", "bullet"]))
        win_y0, win_y1 = ch * uniform(rng, 0.18, 0.28), ch * uniform(rng, 0.4, 0.5)
        for k in range(n_cars):
            x1 = x + L
            front = k == n_cars - 1
            if front and nose == "sloped":
                nl = uniform(rng, 0.12, 0.22)
                d.poly([(x, 0.0), (x1 - nl, 0.0), (x1, ch * 0.55), (x1, ch), (x, ch)])
                d.poly([(x1 - nl + 0.02, win_y0), (x1 - nl * 0.35, win_y0 + (ch * 0.55) * 0.4),
                        (x1 - nl * 0.45, win_y1), (x1 - nl + 0.02, win_y1)], "dark")
            elif front and nose == "bullet":
                nl = uniform(rng, 0.2, 0.35)
                pts = [(x, 0.0), (x1 - nl, 0.0)]
                for a in np.linspace(-np.pi / 2, 0, 8):
                    pts.append((x1 - nl + nl * np.cos(a), ch * 0.85 + ch * 0.85 * np.sin(a)))
                pts += [(x1, ch), (x, ch)]
                d.poly(pts)
                d.poly([(x1 - nl + 0.02, win_y0), (x1 - nl * 0.45, win_y0 + 0.01), (x1 - nl * 0.3, win_y1),
                        (x1 - nl + 0.02, win_y1)], "dark")
            else:
                d.rrect(x, 0.0, x1, ch, ch * 0.12, r_bottom=0.002)
                if front:
                    d.rect(x1 - 0.06, win_y0, x1 - 0.015, win_y1, "dark")
            win_end = x1 - (0.25 if front else 0.04)
            if rng.random() < 0.5:
                d.rect(x + 0.04, win_y0, win_end, win_y1, "dark")  # continuous window band
            else:
                ww = uniform(rng, 0.03, 0.06)
                for wx in np.arange(x + 0.04, win_end - ww, ww * 1.6):
                    d.rect(float(wx), win_y0, float(wx) + ww, win_y1, "dark")
            for dx in (x + 0.12, x1 - 0.3):
                d.rect(dx, win_y0 - 0.01, dx + 0.035, ch * 0.9, "dark")
            if rng.random() < 0.6:
                d.rect(x, ch * 0.6, x1 - 0.05, ch * 0.68, "light")
            d.rect(x + 0.02, ch * 0.92, x1 - 0.02, ch * 1.08, "dark")
            for bx in (x + 0.12, x1 - 0.15):
                for wx in (bx - 0.04, bx + 0.04):
                    d.ellipse(wx, ch * 1.08, 0.035, 0.035)
                    d.ellipse(wx, ch * 1.08, 0.035, 0.035, layer="dark")
            if rng.random() < 0.35:  # pantograph
                px = x + L * 0.4
                d.line([(px, 0.0), (px + 0.08, -0.08), (px + 0.02, -0.12), (px + 0.14, -0.12)], 0.01)
            x = x1 + gap
            if k < n_cars - 1:
                d.rect(x1 - 0.01, ch * 0.4, x + 0.01, ch * 0.8)
        return d, f"side-{nose}", "side"
    # three-quarter view: front face on the right, side receding to the left
    fw = 0.4
    fh = fw * uniform(rng, 1.1, 1.5)
    fx0 = 1.0 - fw
    top_r = fw * uniform(rng, 0.1, 0.35)
    d.rrect(fx0, 0.0, 1.0, fh, top_r, r_bottom=0.01)
    sl = uniform(rng, 0.6, 1.6)
    shrink = uniform(rng, 0.45, 0.75)
    far_top = fh * (1 - shrink) * 0.5
    far_bot = fh - fh * (1 - shrink) * 0.5
    d.poly([(fx0 + 0.01, top_r * 0.3), (fx0 - sl, far_top), (fx0 - sl, far_bot), (fx0 + 0.01, fh)])
    wy0, wy1 = fh * uniform(rng, 0.1, 0.18), fh * uniform(rng, 0.35, 0.48)
    d.rrect(fx0 + fw * 0.1, wy0, 1.0 - fw * 0.1, wy1, fw * 0.05, "dark")
    for hx in (fx0 + fw * 0.2, 1.0 - fw * 0.2):
        d.ellipse(hx, fh * 0.72, fw * 0.06, fw * 0.05, layer="light", n=12)
    d.rect(fx0 + fw * 0.05, fh * 0.86, 1.0 - fw * 0.05, fh * 0.97, "dark")
    f0, f1 = (wy0 - top_r * 0.3) / fh, wy1 / fh
    near_t, near_b = top_r * 0.3, fh
    sy0 = near_t + (near_b - near_t) * f0
    sy1 = near_t + (near_b - near_t) * f1
    fy0 = far_top + (far_bot - far_top) * f0
    fy1 = far_top + (far_bot - far_top) * f1
    d.poly([(fx0 - 0.03, sy0), (fx0 - sl * 0.95, fy0), (fx0 - sl * 0.95, fy1), (fx0 - 0.03, sy1)], "dark")
    if rng.random() < 0.6:
        d.poly([(fx0, fh * 0.6), (fx0 - sl, far_top + (far_bot - far_top) * 0.6),
                (fx0 - sl, far_top + (far_bot - far_top) * 0.66), (fx0, fh * 0.66)], "light")
    return d, "three-quarter", "Frontal"


def tvmonitor(rng: np.random.Generator, on_ground: bool) -> tuple[Drawing, str, str]:
    d = Drawing()
    crt = rng.random() < 0.3
    aspect = uniform(rng, 1.2, 1.38) if crt else uniform(rng, 1.3, 1.85)
    W, H = 1.0, 1.0 / aspect
    bez = uniform(rng, 0.08, 0.14) if crt else uniform(rng, 0.025, 0.07)
    r = uniform(rng, 0.02, 0.08) if crt else uniform(rng, 0.0, 0.02)
    d.rrect(0.0, 0.0, W, H, max(r, 0.001))
    d.rrect(0.0, 0.0, W, H, max(r, 0.001), layer="dark")
    bottom = bez * (uniform(rng, 1.5, 2.5) if crt else uniform(rng, 1.0, 1.8))
    sr = uniform(rng, 0.03, 0.07) if crt else 0.002
    on = rng.random() < 0.75
    d.rrect(bez, bez, W - bez, H - bottom, sr, layer="screen" if on else "body")
    if crt:
        for k in range(int(rng.integers(1, 4))):
            d.ellipse(W - bez - 0.04 - k * 0.05, H - bottom / 2, 0.014, 0.014, layer="light", n=8)
    stand = str(rng.choice(["stand", "feet", "none"], p=[0.6, 0.2, 0.2]))
    if stand == "stand":
        nw, nh = uniform(rng, 0.05, 0.12), uniform(rng, 0.05, 0.14)
        d.rect(W / 2 - nw / 2, H - 0.01, W / 2 + nw / 2, H + nh)
        bw = uniform(rng, 0.25, 0.5)
        d.poly([(W / 2 - bw / 2, H + nh + 0.03), (W / 2 - bw / 2 + 0.03, H + nh - 0.005),
                (W / 2 + bw / 2 - 0.03, H + nh - 0.005), (W / 2 + bw / 2, H + nh + 0.03)])
        d.rect(W / 2 - nw / 2, H - 0.01, W / 2 + nw / 2, H + nh + 0.03, "dark")
    elif stand == "feet":
        for fx in (0.15, 0.85):
            d.poly([(fx - 0.03, H - 0.01), (fx + 0.03, H - 0.01), (fx + 0.06, H + 0.06), (fx - 0.06, H + 0.06)])
    return d, ("crt" if crt else "flat") + ("" if on else "-off"), "Frontal"


HORSE_WORK_SCALE = 0.5
"""The silhouette (304x371) is posed at half resolution: sprites are at most ~200 px wide at 4x supersampling."""


@lru_cache(maxsize=1)
def _horse_parts() -> tuple[np.ndarray, Image.Image, np.ndarray, tuple[float, float], int]:
    """Static pieces of the horse pose: (body without the neck, neck+head canvas, near-pivot disc, pivot, pad)."""
    sil = horse_silhouette()
    h0, w0 = sil.shape
    s = HORSE_WORK_SCALE
    hs, ws = int(round(h0 * s)), int(round(w0 * s))
    small = np.asarray(Image.fromarray((sil * 255).astype(np.uint8)).resize((ws, hs), Image.BOX), np.float32)
    # neck and head: the side of the line A-B (withers to chest) that holds the head, in source pixels
    ax, ay, bx, by = 222.0 * s, 55.0 * s, 300.0 * s, 165.0 * s
    ys, xs = np.mgrid[0:hs, 0:ws].astype(np.float32)
    region = ((bx - ax) * (ys - ay) - (by - ay) * (xs - ax)) < 0
    pivot = (262.0 * s, 112.0 * s)
    pad = int(round(120 * s))
    head = np.zeros((hs + 2 * pad, ws + 2 * pad), np.float32)
    head[pad:pad + hs, pad:pad + ws] = small * region
    rest = np.zeros_like(head)
    rest[pad:pad + hs, pad:pad + ws] = small * ~region
    jy, jx = np.mgrid[0:head.shape[0], 0:head.shape[1]].astype(np.float32)
    near = ((jx - pivot[0] - pad) ** 2 + (jy - pivot[1] - pad) ** 2) < (70.0 * s) ** 2
    # the neck's base stays put (it fills the wedge the turn opens); the rest of the neck and the head turn
    rest = np.maximum(rest, head * near)
    for a in (rest, near):
        a.setflags(write=False)
    return rest, Image.fromarray(head.astype(np.uint8)), near, pivot, pad


def horse(rng: np.random.Generator, size_px: float, flip: bool, angle: float) -> dict[str, Image.Image]:
    """Horse layers at SS x ``size_px`` (longer side before the pose), from the real silhouette with its
    head turned, then one affine warp: aspect, shear, mirror and rotation."""
    rest, head, _, pivot, pad = _horse_parts()
    theta = uniform(rng, -10.0, 40.0)  # degrees the head and neck turn down about the withers
    turned = np.asarray(head.rotate(-theta, resample=Image.BILINEAR, center=(pivot[0] + pad, pivot[1] + pad)),
                        np.float32)
    body = np.maximum(rest, turned)
    nz_y, nz_x = np.nonzero(body > 127)
    body = body[nz_y.min():nz_y.max() + 1, nz_x.min():nz_x.max() + 1]
    bh, bw = body.shape
    dark = np.zeros_like(body)
    if rng.random() < 0.4:  # darker lower legs
        dark[int(bh * uniform(rng, 0.72, 0.82)):] = 255.0
    if rng.random() < 0.5:  # darker tail
        dark[:, : int(bw * 0.12)] = 255.0
    dark = np.minimum(dark, body)
    aspect = uniform(rng, 0.85, 1.15)
    shear = uniform(rng, -0.12, 0.12)
    scale = size_px * SS / max(bw, bh * aspect)
    t = np.deg2rad(angle)
    m = (np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]]) @ np.diag([-1.0 if flip else 1.0, 1.0])
         @ np.array([[scale, shear * scale * aspect], [0.0, scale * aspect]]))
    corners = np.array([[0, 0], [bw, 0], [0, bh], [bw, bh]], dtype=np.float64) @ m.T
    margin = 2 * SS
    lo = corners.min(axis=0)
    size = np.ceil(corners.max(axis=0) - lo).astype(int) + 2 * margin
    tvec = margin - lo
    inv = np.linalg.inv(m)
    c = -inv @ tvec
    data = (inv[0, 0], inv[0, 1], c[0], inv[1, 0], inv[1, 1], c[1])
    layers = {name: Image.new("L", (int(size[0]), int(size[1])), 0) for name in LAYERS}
    for name, arr in (("body", body), ("dark", dark)):
        im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        layers[name] = im.transform((int(size[0]), int(size[1])), Image.AFFINE, data, resample=Image.BILINEAR,
                                    fillcolor=0)
    return layers


CLASS_SHAPES: dict[str, Callable[[np.random.Generator, bool], tuple[Drawing, str, str]]] = {
    "aeroplane": aeroplane, "bird": bird, "boat": boat, "train": train, "tvmonitor": tvmonitor,
}  # fmt: skip


def class_sprite(cls: str, rng: np.random.Generator, size_px: float, max_rot: float, on_ground: bool) -> Sprite:
    """A random instance of class ``cls`` whose longer side is about ``size_px`` before rotation."""
    flip = bool(rng.random() < 0.5)
    angle = uniform(rng, -max_rot, max_rot)
    if cls == "horse":
        layers = horse(rng, size_px, flip, angle)
        view, pose = "side", _pose(flip)
    else:
        drawing, view, pose = CLASS_SHAPES[cls](rng, on_ground)
        layers = drawing.rasterize(size_px, flip, angle)
        if pose == "side":
            pose = _pose(flip)
    return finish(layers, cls, view, pose)


# -- distractors ----------------------------------------------------------------------------------------

DISTRACTORS: tuple[str, ...] = ("rock", "post", "ball", "box", "bush", "cone")


def distractor_sprite(rng: np.random.Generator, size_px: float) -> Sprite:
    """A non-class shape (never labelled)."""
    kind = str(rng.choice(DISTRACTORS))
    d = Drawing()
    if kind == "rock":
        n = int(rng.integers(7, 13))
        t = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = rng.uniform(0.6, 1.0, n)
        sq = uniform(rng, 0.45, 0.9)
        d.poly(list(zip(np.cos(t) * r, np.sin(t) * r * sq, strict=True)))
        d.poly(list(zip(np.cos(t) * r * 0.9, 0.15 + np.clip(np.sin(t), 0, 1) * r * sq * 0.8, strict=True)), "dark")
    elif kind == "post":
        pw = uniform(rng, 0.06, 0.14)
        d.rect(-pw / 2, 0.0, pw / 2, 1.0)
        if rng.random() < 0.4:
            sw = uniform(rng, 0.25, 0.5)
            if rng.random() < 0.5:
                d.ellipse(0.0, 0.05, sw / 2, sw / 2)
                d.ellipse(0.0, 0.05, sw / 2 * 0.75, sw / 2 * 0.75, layer="light")
            else:
                d.rect(-sw / 2, -0.05, sw / 2, sw * 0.6)
    elif kind == "ball":
        d.ellipse(0.0, 0.0, 0.5, 0.5)
        d.ellipse(-0.15, -0.15, 0.12, 0.1, layer="light")
    elif kind == "box":
        aspect = uniform(rng, 0.5, 1.0)
        d.rect(0.0, 0.0, 1.0, aspect)
        d.poly([(0.0, 0.0), (0.2, -0.15), (1.2, -0.15), (1.0, 0.0)], "body")
        d.poly([(0.0, 0.0), (0.2, -0.15), (1.2, -0.15), (1.0, 0.0)], "light")
    elif kind == "bush":
        for _ in range(int(rng.integers(4, 8))):
            d.ellipse(uniform(rng, -0.5, 0.5), uniform(rng, -0.2, 0.2), uniform(rng, 0.2, 0.4),
                      uniform(rng, 0.15, 0.3))
    else:
        d.poly([(-0.3, 1.0), (-0.05, 0.0), (0.05, 0.0), (0.3, 1.0)])
        d.rect(-0.4, 0.95, 0.4, 1.05)
        d.poly([(-0.2, 0.6), (-0.12, 0.35), (0.12, 0.35), (0.2, 0.6)], "light")
    layers = d.rasterize(size_px, bool(rng.random() < 0.5), uniform(rng, -20, 20))
    return finish(layers, kind, kind, "Unspecified")
