"""Named benchmark variants: one point of the benchmark family each, and how its hard-OoD list is made.

A variant is a :class:`BenchmarkSpec` (the default spec plus a few overrides, so its content and cache
key follow from ``(BENCHMARK_VERSION, spec)`` as for any spec) and an OoD source:

``mined``
    The paper's Sec. 3.1: rank the candidate pool by F_in's p(c), keep p(c) >= 0.5, prune the hidden
    positives (what ``woodseg ood mine`` and the demo do).
``context_only``
    A ready-made list of context-only images, as a user who photographs "the rails without a train"
    would bring: the pool's hard OoD images (a class context, no class object), balanced over the
    contexts and not chosen by any classifier.
``unreviewed``
    Mined as ``mined`` but with the review skipped: the top ``per_class`` images by p(c) are kept as
    they come, hidden positives included. A failure case, not a recipe: the paper's Sec. 3.1 has a
    person remove the images that do contain the class, since BCE towards zero on them teaches the
    classifier to ignore the class (the paper's Table 4 varies how many stay).

The axes are the ones W-OoD's gain can hinge on: how often a class sits on its context
(``cooccurrence``), how large the object is relative to that context (``object_scale``) and how the OoD
list was made. ``default`` is the benchmark itself (``BenchmarkSpec()`` of the current
``BENCHMARK_VERSION``), unchanged; every other variant changes only the parameters it names, so each
version of the benchmark has the same family.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from woodseg.data.benchmark.spec import BenchmarkSpec
from woodseg.data.benchmark.truth import read_pool_truth
from woodseg.data.ood_list import write_ood_list

OodSource = Literal["mined", "context_only", "unreviewed"]
OOD_SOURCES: tuple[str, ...] = ("mined", "context_only", "unreviewed")

SMALL_OBJECTS = (0.25, 0.5)
"""Object scale (longer side / shorter image side) of the small-object variants: the context fills most
of the image, as in the failure the variants are meant to reproduce (default: 0.4-0.9)."""

TINY_OBJECTS = (0.15, 0.35)
"""Smaller still. Historical observation on benchmark v1.1 (112 px images, F_in trained from scratch): F_in
did not localise these at all (seed IoU near 0 for every class), so the variant measured nothing about
W-OoD there. Kept to find where that floor lies in the current version."""


@dataclass(frozen=True)
class Variant:
    """One named benchmark variant."""

    name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)
    ood_source: OodSource = "mined"

    def spec(self, seed: int = 0, scale: float = 1.0) -> BenchmarkSpec:
        """The variant's benchmark spec (``scale`` multiplies the image counts as ``--scale`` does)."""
        spec = replace(BenchmarkSpec(seed=seed), **self.overrides)
        return spec.scaled(scale) if scale != 1.0 else spec


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("default", "the benchmark itself: co-occurrence 0.85, objects 0.4-0.9 of the image, mined OoD"),
    Variant("default-list", "the default content, OoD from a ready-made context-only list",
            ood_source="context_only"),
    Variant("default-unreviewed", "the default content, OoD mined by p(c) with the review skipped (hidden "
            "positives stay in the list): a failure case for the safeguard", ood_source="unreviewed"),
    Variant("weak-context", "co-occurrence 0.60 (context a weak cue), mined OoD", {"cooccurrence": 0.60}),
    Variant("strong-context", "co-occurrence 0.95, mined OoD", {"cooccurrence": 0.95}),
    Variant("strong-context-list", "co-occurrence 0.95, ready-made context-only OoD list", {"cooccurrence": 0.95},
            ood_source="context_only"),
    Variant("small-objects", "objects 0.25-0.5 of the image, co-occurrence 0.85, mined OoD",
            {"object_scale": SMALL_OBJECTS}),
    Variant("small-objects-list", "objects 0.25-0.5, co-occurrence 0.85, ready-made context-only OoD list",
            {"object_scale": SMALL_OBJECTS}, ood_source="context_only"),
    Variant("small-strong", "objects 0.25-0.5, co-occurrence 0.95, mined OoD",
            {"object_scale": SMALL_OBJECTS, "cooccurrence": 0.95}),
    Variant("small-strong-list", "objects 0.25-0.5, co-occurrence 0.95, ready-made context-only OoD list",
            {"object_scale": SMALL_OBJECTS, "cooccurrence": 0.95}, ood_source="context_only"),
    Variant("tiny-strong-list", "objects 0.15-0.35, co-occurrence 0.95, ready-made context-only OoD list",
            {"object_scale": TINY_OBJECTS, "cooccurrence": 0.95}, ood_source="context_only"),
    Variant("small-flat-strong-list", "flat-coloured objects 0.25-0.5 (only the outline tells the class) on "
            "textured contexts, co-occurrence 0.95, ready-made context-only OoD list: the shape of the reported "
            "failure", {"object_scale": SMALL_OBJECTS, "cooccurrence": 0.95, "object_fill": "flat"},
            ood_source="context_only"),
)}


def get_variant(name: str) -> Variant:
    """The variant called ``name``; a ValueError lists the known ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown benchmark variant '{name}'; known: {', '.join(VARIANTS)}") from None


def context_only_list(root: str | Path, dest: str | Path, n: int, seed: int = 0) -> Path:
    """Write ``n`` of the pool's context-only (hard OoD) images to ``dest``, balanced over the contexts.

    Chosen by a seeded draw from the pool truth, never by a classifier: the list a user brings. Entries
    are ``pool.txt`` paths (relative to ``ood_pool/``). Fewer than ``n`` hard images: all of them.
    """
    truth = read_pool_truth(root)
    by_context: dict[str, list[str]] = {}
    for t in truth.values():
        if t.kind == "hard":
            by_context.setdefault(t.context, []).append(t.path)
    rng = np.random.default_rng(seed)
    queues = {c: [paths[i] for i in rng.permutation(len(paths))] for c, paths in sorted(by_context.items())}
    picked: list[str] = []
    while len(picked) < n and any(queues.values()):
        for c in sorted(queues):
            if queues[c] and len(picked) < n:
                picked.append(queues[c].pop(0))
    dest = Path(dest)
    write_ood_list(dest, picked)
    return dest
