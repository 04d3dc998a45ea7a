"""Every parameter of the benchmark, its version, its classes and their contexts.

The benchmark's content is a pure function of ``(BENCHMARK_VERSION, BenchmarkSpec)``: the cache keys on
both, and any change to what the generator draws must bump ``BENCHMARK_VERSION``.

Parameters (defaults in brackets)
---------------------------------
seed [0]
    Root of every random stream. Each image draws from its own ``numpy.random.default_rng`` seeded by
    ``SeedSequence([seed, stream, index])``, so an image does not change when another split is resized.
height, width [160, 160]
    Image size in pixels (any size works; textures and shapes scale with it). v2.0 draws at 160 px (v1.1:
    112 px), so the stride-16 CAMs are 10x10 and IRN's stride-4 maps 40x40: enough spatial detail for
    refinement to act on.
n_train_aug [900], n_train [200], n_val [200]
    In-distribution images. ``train`` is a seeded random subset of ``train_aug`` (the paper judges seeds
    on VOC train, a subset of train_aug); ``val`` is disjoint from train_aug.
n_pool [1200]
    Candidate OoD pool size.
pool_hard_frac [0.45]
    Fraction of the pool that is hard OoD: one of the six class contexts with none of the classes in it
    (possibly with non-class distractor shapes). Balanced over the six contexts.
pool_positive_rate [0.15]
    Fraction of the pool that are hidden positives: images holding a class object, which a human would
    prune. The rest (0.40 by default) is easy OoD: neutral scenes (brick walls, rooms, photo crops).
    Counts are exact (rounded), so the positive rate is known.
cooccurrence [0.85]
    Fraction of in-distribution images whose scene is the context of one of their classes (exact count
    over a split, rounded). Otherwise the scene is neutral or the context of a class not in the image.
    For tvmonitor (no fixed context) the "own" scenes are the varied neutral ones.
neutral_offcontext [0.5]
    Of the off-context images, the fraction that get a neutral scene (the rest: another class's context).
multilabel_rate [0.20]
    Fraction of in-distribution images with two classes (exact count, rounded).
object_count_probs [(0.7, 0.2, 0.1)]
    Probability of 1, 2 or 3 objects in an image (a two-class image has at least two).
object_scale [(0.4, 0.9)]
    Range of an object's longer side as a fraction of the shorter image side (log-uniform).
max_rotation_deg [12.0]
    Objects are rotated uniformly within +-this (and mirrored half of the time).
distractor_rate [0.35]
    Probability that an image (of any kind: in-distribution, hard or easy OoD) holds 1-2 non-class
    shapes (rocks, posts, balls, boxes, bushes). The same rate everywhere, so distractors carry no label.
min_visible_frac [0.35], min_visible_px [12]
    An object must keep this fraction of its area visible (after border cuts and occlusion) and this many
    non-void mask pixels, else its placement is redrawn.
void_px [1]
    Width of the 255 (ignore) band on the inside of object boundaries in the masks, like VOC; 0: none.
jpeg_quality [95]
object_fill ["material"]
    ``material``: each class has its own surface pattern (fur, feathers, panels, ...; see ``materials.py``);
    ``flat``: every object is one random colour (still lit and part-shaded), so only its outline tells the
    class, while the context keeps its texture.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

BENCHMARK_VERSION = "2.0"
"""Bump on any change to what is drawn; the cache keys on it."""

CLASSES: tuple[str, ...] = ("aeroplane", "bird", "boat", "horse", "train", "tvmonitor")
"""Classifier order; mask value k+1 is class k."""

CONTEXTS: dict[str, tuple[str, ...]] = {
    "aeroplane": ("sky", "runway"),
    "bird": ("foliage", "sky"),
    "boat": ("water",),
    "horse": ("meadow",),
    "train": ("rails",),
    "tvmonitor": (),
}
"""Each class's own background contexts. tvmonitor is the control class: no fixed context."""

CONTEXT_SCENES: tuple[str, ...] = ("sky", "runway", "foliage", "water", "meadow", "rails")
NEUTRAL_SCENES: tuple[str, ...] = ("brick", "indoor", "photo")
ALL_SCENES: tuple[str, ...] = CONTEXT_SCENES + NEUTRAL_SCENES


def context_classes(scene: str) -> tuple[str, ...]:
    """The classes whose context a scene is (``sky`` -> aeroplane and bird; neutral scenes -> none)."""
    return tuple(c for c in CLASSES if scene in CONTEXTS[c])


def id_prefix() -> str:
    return BENCHMARK_VERSION.split(".")[0]


def image_id(index: int) -> str:
    """In-distribution image ids: ``b1_000123``."""
    return f"b{id_prefix()}_{index:06d}"


def pool_id(index: int) -> str:
    """Pool image ids: ``p1_000045``."""
    return f"p{id_prefix()}_{index:06d}"


@dataclass(frozen=True)
class BenchmarkSpec:
    """All parameters of one benchmark (see the module docstring for each)."""

    seed: int = 0
    height: int = 160
    width: int = 160
    n_train_aug: int = 900
    n_train: int = 200
    n_val: int = 200
    n_pool: int = 1200
    pool_hard_frac: float = 0.45
    pool_positive_rate: float = 0.15
    cooccurrence: float = 0.85
    neutral_offcontext: float = 0.5
    multilabel_rate: float = 0.20
    object_count_probs: tuple[float, float, float] = (0.7, 0.2, 0.1)
    object_scale: tuple[float, float] = (0.4, 0.9)
    max_rotation_deg: float = 12.0
    distractor_rate: float = 0.35
    min_visible_frac: float = 0.35
    min_visible_px: int = 12
    void_px: int = 1
    jpeg_quality: int = 95
    object_fill: str = "material"

    def __post_init__(self) -> None:
        # tuples arrive as lists from JSON
        object.__setattr__(self, "object_count_probs", tuple(float(p) for p in self.object_count_probs))
        object.__setattr__(self, "object_scale", tuple(float(s) for s in self.object_scale))
        problems = []
        if self.height < 32 or self.width < 32:
            problems.append("images must be at least 32x32")
        if self.n_train_aug < 1 or self.n_val < 0 or self.n_pool < 0:
            problems.append("counts must be positive")
        if not 0 <= self.n_train <= self.n_train_aug:
            problems.append("n_train must be within 0..n_train_aug (train is a subset of train_aug)")
        for name in ("pool_hard_frac", "pool_positive_rate", "cooccurrence", "neutral_offcontext",
                     "multilabel_rate", "distractor_rate", "min_visible_frac"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1]")
        if self.pool_hard_frac + self.pool_positive_rate > 1.0:
            problems.append("pool_hard_frac + pool_positive_rate must be <= 1")
        if len(self.object_count_probs) != 3 or abs(sum(self.object_count_probs) - 1.0) > 1e-6 or min(
                self.object_count_probs) < 0:
            problems.append("object_count_probs must be 3 probabilities summing to 1")
        lo, hi = self.object_scale
        if not 0.02 <= lo <= hi <= 1.0:
            problems.append("object_scale must be 0.02 <= lo <= hi <= 1")
        if not 1 <= self.jpeg_quality <= 100:
            problems.append("jpeg_quality must be in 1..100")
        if self.void_px < 0:
            problems.append("void_px must be >= 0")
        if self.object_fill not in ("material", "flat"):
            problems.append("object_fill must be 'material' or 'flat'")
        if problems:
            raise ValueError("invalid BenchmarkSpec: " + "; ".join(problems))

    # -- presets ----------------------------------------------------------------------------------------
    @classmethod
    def tiny(cls, seed: int = 0, **overrides: Any) -> BenchmarkSpec:
        """A few dozen 64x64 images: for tests and smoke runs (about a second to generate)."""
        base = dict(seed=seed, height=64, width=64, n_train_aug=36, n_train=12, n_val=12, n_pool=40)
        base.update(overrides)
        return cls(**base)

    def scaled(self, factor: float) -> BenchmarkSpec:
        """The same spec with every image count multiplied by ``factor`` (at least 6 train_aug images)."""
        def s(n: int, lo: int) -> int:
            return max(lo, int(round(n * factor)))

        n_train_aug = s(self.n_train_aug, 6)
        return replace(self, n_train_aug=n_train_aug, n_train=min(n_train_aug, s(self.n_train, 1)),
                       n_val=s(self.n_val, 0), n_pool=s(self.n_pool, 0))

    # -- identity ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["object_count_probs"] = list(self.object_count_probs)
        d["object_scale"] = list(self.object_scale)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchmarkSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown BenchmarkSpec fields: {unknown}")
        return cls(**d)

    def hash(self) -> str:
        """12 hex digits over the version and every parameter (the cache folder name)."""
        blob = json.dumps({"version": BENCHMARK_VERSION, "spec": self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def folder_name(self) -> str:
        return f"v{BENCHMARK_VERSION}-{self.hash()}"

    def pool_counts(self) -> dict[str, int]:
        n_pos = int(round(self.n_pool * self.pool_positive_rate))
        n_hard = min(self.n_pool - n_pos, int(round(self.n_pool * self.pool_hard_frac)))
        return {"hard": n_hard, "easy": self.n_pool - n_pos - n_hard, "positive": n_pos}
