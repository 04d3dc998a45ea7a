"""What each image holds, decided before anything is drawn: classes, scene, object and distractor counts.

In-distribution splits (``train_aug``, ``val``), each planned from its own seeded stream:

* primary classes are balanced (each class ``n/6`` times, shuffled);
* exactly ``round(n * multilabel_rate)`` images get a second, different class;
* exactly ``round(n * cooccurrence)`` images are "in context": the scene is a context of one of their
  classes (for two classes, of one of them at random; a class with two contexts picks one at random);
  for a tvmonitor-only image "in context" means one of the varied neutral scenes;
* the others are off-context: a neutral scene with probability ``neutral_offcontext`` (never for
  tvmonitor-only images), else the context of a class not in the image;
* 1-3 objects by ``object_count_probs`` (at least one per class), and distractors with
  ``distractor_rate``.

The candidate OoD pool has exactly ``pool_counts()`` hard, easy and positive images in shuffled order:
hard ones cycle through the six contexts (balanced), easy ones are neutral scenes, positives hold one
class (balanced over classes) placed like an in-distribution image (its context with probability
``cooccurrence``, else any other scene).

Neutral scenes are drawn photo 45%, indoor 30%, brick 25%.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from woodseg.data.benchmark.spec import (
    CLASSES,
    CONTEXT_SCENES,
    CONTEXTS,
    NEUTRAL_SCENES,
    BenchmarkSpec,
    context_classes,
    image_id,
    pool_id,
)

NEUTRAL_WEIGHTS = {"photo": 0.45, "indoor": 0.30, "brick": 0.25}

# seed-sequence stream numbers: [seed, STREAM, code/index]
PLAN_STREAM, IMAGE_STREAM, POOL_STREAM = 0, 1, 2
SPLIT_CODES = {"train_aug": 0, "val": 1, "pool": 2, "train": 3}


@dataclass(frozen=True)
class Recipe:
    image_id: str
    split: str  # train_aug | val | pool
    kind: str  # in | hard | easy | positive
    classes: tuple[str, ...]  # present classes, classifier order
    object_classes: tuple[str, ...]  # one per object, in drawing order
    scene: str
    in_context: bool | None  # None where no present class has a context (tvmonitor only, OoD)
    n_distractors: int
    stream: int
    index: int

    def rng(self, seed: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([seed, self.stream, self.index]))

    @property
    def context_classes(self) -> tuple[str, ...]:
        return context_classes(self.scene)


def plan_rng(spec: BenchmarkSpec, split: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([spec.seed, PLAN_STREAM, SPLIT_CODES[split]]))


def exact_flags(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """n booleans, exactly round(n * rate) of them True, in random order."""
    flags = np.zeros(n, dtype=bool)
    flags[: int(round(n * rate))] = True
    return rng.permutation(flags)


def neutral_scene(rng: np.random.Generator) -> str:
    names = list(NEUTRAL_SCENES)
    return str(rng.choice(names, p=[NEUTRAL_WEIGHTS[n] for n in names]))


def choose_scene(rng: np.random.Generator, classes: tuple[str, ...], in_context: bool,
                 spec: BenchmarkSpec) -> tuple[str, bool | None]:
    ctx_classes = [c for c in classes if CONTEXTS[c]]
    if in_context:
        if not ctx_classes:
            return neutral_scene(rng), None
        owner = str(rng.choice(ctx_classes))
        return str(rng.choice(list(CONTEXTS[owner]))), True
    own = {s for c in classes for s in CONTEXTS[c]}
    if ctx_classes and rng.random() < spec.neutral_offcontext:
        return neutral_scene(rng), False
    others = [s for s in CONTEXT_SCENES if s not in own]
    return str(rng.choice(others)), (False if ctx_classes else None)


def _objects(rng: np.random.Generator, classes: tuple[str, ...], spec: BenchmarkSpec) -> tuple[str, ...]:
    n = int(rng.choice([1, 2, 3], p=list(spec.object_count_probs)))
    n = max(n, len(classes))
    objs = list(classes) + [str(rng.choice(list(classes))) for _ in range(n - len(classes))]
    return tuple(str(c) for c in rng.permutation(objs))


def _distractors(rng: np.random.Generator, spec: BenchmarkSpec) -> int:
    return int(rng.integers(1, 3)) if rng.random() < spec.distractor_rate else 0


def _ordered(classes: set[str] | list[str]) -> tuple[str, ...]:
    return tuple(c for c in CLASSES if c in classes)


def plan_split(spec: BenchmarkSpec, split: str) -> list[Recipe]:
    """Recipes of an in-distribution split (``train_aug`` or ``val``)."""
    n, offset = (spec.n_train_aug, 0) if split == "train_aug" else (spec.n_val, spec.n_train_aug)
    rng = plan_rng(spec, split)
    primaries = rng.permutation(np.resize(np.arange(len(CLASSES)), n)) if n else np.zeros(0, int)
    multi = exact_flags(rng, n, spec.multilabel_rate)
    ctx = exact_flags(rng, n, spec.cooccurrence)
    out = []
    for i in range(n):
        first = CLASSES[int(primaries[i])]
        present = [first]
        if multi[i]:
            present.append(str(rng.choice([c for c in CLASSES if c != first])))
        classes = _ordered(present)
        scene, in_ctx = choose_scene(rng, classes, bool(ctx[i]), spec)
        out.append(Recipe(image_id(offset + i), split, "in", classes, _objects(rng, classes, spec), scene, in_ctx,
                          _distractors(rng, spec), IMAGE_STREAM, offset + i))
    return out


def plan_train_subset(spec: BenchmarkSpec, train_aug_ids: list[str]) -> list[str]:
    """``n_train`` ids of train_aug, chosen at random, in train_aug order."""
    rng = plan_rng(spec, "train")
    pick = np.sort(rng.choice(len(train_aug_ids), size=spec.n_train, replace=False))
    return [train_aug_ids[int(i)] for i in pick]


def plan_pool(spec: BenchmarkSpec) -> list[Recipe]:
    counts = spec.pool_counts()
    rng = plan_rng(spec, "pool")
    kinds = rng.permutation(np.array(["hard"] * counts["hard"] + ["easy"] * counts["easy"]
                                     + ["positive"] * counts["positive"], dtype=object))
    hard_ctx = list(rng.permutation(np.resize(np.array(CONTEXT_SCENES, dtype=object), counts["hard"])))
    pos_cls = list(rng.permutation(np.resize(np.array(CLASSES, dtype=object), counts["positive"])))
    out = []
    for i, kind in enumerate(kinds):
        if kind == "hard":
            scene, classes, objs, in_ctx = str(hard_ctx.pop()), (), (), None
        elif kind == "easy":
            scene, classes, objs, in_ctx = neutral_scene(rng), (), (), None
        else:
            classes = (str(pos_cls.pop()),)
            scene, in_ctx = choose_scene(rng, classes, bool(rng.random() < spec.cooccurrence), spec)
            objs = _objects(rng, classes, spec)
        out.append(Recipe(pool_id(i), "pool", str(kind), classes, objs, scene, in_ctx, _distractors(rng, spec),
                          POOL_STREAM, i))
    return out
