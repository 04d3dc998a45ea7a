"""The embedded spurious-correlation benchmark: a laptop-sized, procedurally generated miniature of the
problem W-OoD (Lee et al., CVPR 2022) solves, written in the Pascal VOC layout.

Design
------
Six classes, each (but one) tied to its own background *context*::

    aeroplane -> sky or runway      bird  -> foliage or sky     boat  -> water
    horse     -> meadow             train -> rails              tvmonitor -> none (control class)

In ``cooccurrence`` (0.85) of the in-distribution images the scene is the context of one of the image's
classes; otherwise a neutral scene (brick wall, room, photo crop) or another class's context. So the
context is a strong but imperfect cue: a classifier trained on image-level labels learns rails as
evidence of train, and its CAMs bleed into the rails. Sky is shared by bird and aeroplane (a realistic
confusion). tvmonitor appears on varied neutral scenes, so it suffers little from spurious correlation,
as the paper observes for the real class.

The candidate OoD pool holds hard OoD images (a context without its object, sometimes with non-class
distractors), easy OoD images (neutral scenes) and hidden positives (a class object on some scene) at a
known rate; ``ood_pool/truth.csv`` (read with :func:`read_pool_truth`) says which is which, kept apart
from the images so a method cannot peek.

Everything is painted from real photographs and textures that ship offline with scikit-image and
scikit-learn (see :mod:`.sources`): scenes in :mod:`.scenes`, object silhouettes in :mod:`.shapes`
(the horse is scikit-image's real horse silhouette), composition and exact masks in :mod:`.compose`, the
per-image plan in :mod:`.plan`, the on-disk layout in :mod:`.generate`, the atomic cache in :mod:`.cache`,
every parameter in :mod:`.spec`. The generator is a faithful miniature, not tuned to make any method win.

Public API
----------
``BENCHMARK_VERSION``, ``BenchmarkSpec`` (``.tiny()``, ``.scaled(f)``), ``ensure_benchmark(spec,
cache_dir)``, ``build_benchmark(spec, dest)``, ``read_pool_truth(root)``, ``read_image_truth(root)``,
``CLASSES``, ``CONTEXTS``. Named variants of the family (context strength, object size, mined vs
ready-made OoD list): :mod:`.variants`. Command line: ``python -m woodseg.data.benchmark [--out DIR]
[--seed N] [--variant NAME | --list-variants]``.
"""

from woodseg.data.benchmark.cache import (
    build_benchmark,
    check_benchmark,
    default_cache_dir,
    ensure_benchmark,
    generation_count,
)
from woodseg.data.benchmark.spec import BENCHMARK_VERSION, CLASSES, CONTEXTS, BenchmarkSpec
from woodseg.data.benchmark.truth import ImageTruth, PoolTruth, read_image_truth, read_pool_truth

__all__ = [
    "BENCHMARK_VERSION", "CLASSES", "CONTEXTS", "BenchmarkSpec", "ImageTruth", "PoolTruth", "build_benchmark",
    "check_benchmark", "default_cache_dir", "ensure_benchmark", "generation_count", "read_image_truth",
    "read_pool_truth",
]  # fmt: skip
