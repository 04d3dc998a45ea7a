"""Writing a benchmark into a folder, in the Pascal VOC layout plus the OoD pool and its truth.

::

    classes.txt                               one class per line (classifier order)
    JPEGImages/<id>.jpg                       RGB JPEG (quality spec.jpeg_quality)
    Annotations/<id>.xml                      VOC XML, one <object> per object, bndbox of its visible pixels
    SegmentationClass/<id>.png                palette PNG: 0 background, k+1 class k, 255 void band
    ImageSets/Segmentation/train_aug.txt      the classifier's training images
    ImageSets/Segmentation/train.txt          a subset of train_aug (seeds are judged on it)
    ImageSets/Segmentation/val.txt            held out, disjoint from train_aug
    image_truth.csv                           per in-distribution image: split, scene, in_context, ...
    ood_pool/images/<id>.jpg                  the candidate OoD pool
    ood_pool/pool.txt                         every pool image, relative to ood_pool/ (official list format)
    ood_pool/truth.csv                        kind (hard|easy|positive), context, classes, ...
    ood_pool/masks/<id>.png                   pixel masks of the pool images (only positives have objects)
    manifest.json                             version, spec, library versions, counts, checksum, timing
    README.txt                                what this is

Everything but ``manifest.json`` is a pure function of the spec (byte-identical across runs with the
same libraries); the manifest adds the generation time and date. Its ``checksum`` covers every other file.

This module writes into the folder it is given; :mod:`woodseg.data.benchmark.cache` makes that atomic.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

from woodseg.data.benchmark import spec as _spec
from woodseg.data.benchmark.compose import Composition, compose
from woodseg.data.benchmark.plan import Recipe, plan_pool, plan_split, plan_train_subset
from woodseg.data.benchmark.scenes import render_scene
from woodseg.data.benchmark.spec import CLASSES, CONTEXTS, BenchmarkSpec
from woodseg.data.palette import voc_palette

MANIFEST = "manifest.json"
POOL_TRUTH_FIELDS = ("id", "path", "kind", "context", "context_classes", "classes", "n_objects", "n_distractors",
                     "scene_detail")
IMAGE_TRUTH_FIELDS = ("id", "split", "in_train", "classes", "scene", "scene_detail", "context_classes",
                      "in_context", "n_objects", "n_distractors")


@lru_cache(maxsize=1)
def _palette() -> list[int]:
    return voc_palette().reshape(-1).tolist()


def mask_png_bytes(mask: np.ndarray) -> bytes:
    """The palette PNG :func:`woodseg.data.palette.save_palette_png` writes (same bytes; the palette is
    computed once here rather than per file, which made mask writing the slowest step)."""
    im = Image.fromarray(mask.astype(np.uint8), mode="P")
    im.putpalette(_palette())
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def render_recipe(recipe: Recipe, spec: BenchmarkSpec) -> tuple[Composition, str]:
    """Draw one image from its recipe, with its own random stream. Returns (composition, scene detail)."""
    rng = recipe.rng(spec.seed)
    scene = render_scene(recipe.scene, rng, spec.height, spec.width)
    comp = compose(scene, recipe.object_classes, recipe.n_distractors, rng, spec)
    return comp, scene.detail


def jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def voc_xml(image_id: str, comp: Composition, spec: BenchmarkSpec) -> str:
    """VOC-style annotation: bndbox 1-based inclusive, of the object's visible pixels."""
    lines = [
        "<annotation>",
        "\t<folder>WoodsegBenchmark</folder>",
        f"\t<filename>{image_id}.jpg</filename>",
        f"\t<source><database>woodseg benchmark {escape(_spec.BENCHMARK_VERSION)}</database></source>",
        f"\t<size><width>{spec.width}</width><height>{spec.height}</height><depth>3</depth></size>",
        "\t<segmented>1</segmented>",
    ]
    for o in comp.objects:
        x0, y0, x1, y1 = o.bbox
        lines += [
            "\t<object>",
            f"\t\t<name>{o.cls}</name>",
            f"\t\t<pose>{o.pose}</pose>",
            f"\t\t<truncated>{int(o.truncated)}</truncated>",
            "\t\t<difficult>0</difficult>",
            f"\t\t<bndbox><xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin><xmax>{x1 + 1}</xmax><ymax>{y1 + 1}</ymax></bndbox>",
            "\t</object>",
        ]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, fields: tuple[str, ...], rows: list[dict[str, object]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def _lines(ids: list[str]) -> str:
    return "".join(f"{i}\n" for i in ids)


def tree_checksum(root: Path, exclude: tuple[str, ...] = (MANIFEST,)) -> tuple[str, int]:
    """sha256 over every file's relative path and content hash, in sorted path order; and the file count."""
    h = hashlib.sha256()
    n = 0
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        if rel in exclude:
            continue
        h.update(rel.encode() + b"\0" + hashlib.sha256(p.read_bytes()).hexdigest().encode() + b"\n")
        n += 1
    return h.hexdigest(), n


def library_versions() -> dict[str, str]:
    import PIL
    import skimage
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__, "Pillow": PIL.__version__,
            "scikit-image": skimage.__version__, "scikit-learn": sklearn.__version__}


def generate_into(spec: BenchmarkSpec, root: str | Path, log: Callable[[str], None] | None = None) -> dict:
    """Write the whole benchmark into ``root`` (created; should be empty). Returns the manifest."""
    t0 = time.perf_counter()
    root = Path(root)
    for sub in ("JPEGImages", "Annotations", "SegmentationClass", "ImageSets/Segmentation", "ood_pool/images",
                "ood_pool/masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text(_lines(list(CLASSES)), encoding="utf-8")

    train_aug = plan_split(spec, "train_aug")
    val = plan_split(spec, "val")
    train_ids = plan_train_subset(spec, [r.image_id for r in train_aug])
    in_train = set(train_ids)
    image_rows = []
    for recipe in train_aug + val:
        comp, detail = render_recipe(recipe, spec)
        (root / "JPEGImages" / f"{recipe.image_id}.jpg").write_bytes(jpeg_bytes(comp.image, spec.jpeg_quality))
        (root / "Annotations" / f"{recipe.image_id}.xml").write_text(voc_xml(recipe.image_id, comp, spec),
                                                                     encoding="utf-8")
        (root / "SegmentationClass" / f"{recipe.image_id}.png").write_bytes(mask_png_bytes(comp.mask))
        image_rows.append({
            "id": recipe.image_id, "split": recipe.split, "in_train": int(recipe.image_id in in_train),
            "classes": ";".join(recipe.classes), "scene": recipe.scene, "scene_detail": detail,
            "context_classes": ";".join(recipe.context_classes),
            "in_context": "" if recipe.in_context is None else int(recipe.in_context),
            "n_objects": len(comp.objects), "n_distractors": len(comp.distractors),
        })
    seg = root / "ImageSets" / "Segmentation"
    (seg / "train_aug.txt").write_text(_lines([r.image_id for r in train_aug]), encoding="utf-8")
    (seg / "train.txt").write_text(_lines(train_ids), encoding="utf-8")
    (seg / "val.txt").write_text(_lines([r.image_id for r in val]), encoding="utf-8")
    _write_csv(root / "image_truth.csv", IMAGE_TRUTH_FIELDS, image_rows)
    if log:
        log(f"{len(train_aug) + len(val)} in-distribution images in {time.perf_counter() - t0:.1f} s")

    pool = plan_pool(spec)
    pool_rows = []
    for recipe in pool:
        comp, detail = render_recipe(recipe, spec)
        rel = f"images/{recipe.image_id}.jpg"
        (root / "ood_pool" / rel).write_bytes(jpeg_bytes(comp.image, spec.jpeg_quality))
        (root / "ood_pool" / "masks" / f"{recipe.image_id}.png").write_bytes(mask_png_bytes(comp.mask))
        pool_rows.append({
            "id": recipe.image_id, "path": rel, "kind": recipe.kind, "context": recipe.scene,
            "context_classes": ";".join(recipe.context_classes),
            "classes": ";".join(sorted({o.cls for o in comp.objects}, key=CLASSES.index)),
            "n_objects": len(comp.objects), "n_distractors": len(comp.distractors), "scene_detail": detail,
        })
    (root / "ood_pool" / "pool.txt").write_text(_lines([r["path"] for r in pool_rows]), encoding="utf-8")
    _write_csv(root / "ood_pool" / "truth.csv", POOL_TRUTH_FIELDS, pool_rows)
    (root / "README.txt").write_text(readme(spec), encoding="utf-8")

    checksum, n_files = tree_checksum(root)
    manifest = {
        "name": "woodseg spurious-correlation benchmark",
        "version": _spec.BENCHMARK_VERSION,
        "spec": spec.to_dict(),
        "spec_hash": spec.hash(),
        "complete": True,
        "libraries": library_versions(),
        "counts": counts(spec, train_aug, val, train_ids, pool, pool_rows),
        "files": n_files,
        "checksum": checksum,
        "checksum_covers": "every file but manifest.json: sha256 over sorted 'path\\0sha256(content)\\n'",
        "generation_seconds": round(time.perf_counter() - t0, 3),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if log:
        log(f"{len(pool)} pool images; total {manifest['generation_seconds']:.1f} s")
    return manifest


def counts(spec: BenchmarkSpec, train_aug: list[Recipe], val: list[Recipe], train_ids: list[str],
           pool: list[Recipe], pool_rows: list[dict[str, object]]) -> dict:
    in_train = set(train_ids)

    def per_class(recipes: list[Recipe]) -> dict[str, int]:
        return {c: sum(c in r.classes for r in recipes) for c in CLASSES}

    def cooc(recipes: list[Recipe]) -> float | None:
        judged = [r for r in recipes if r.in_context is not None]
        return round(sum(bool(r.in_context) for r in judged) / len(judged), 4) if judged else None

    train = [r for r in train_aug if r.image_id in in_train]
    return {
        "splits": {"train_aug": len(train_aug), "train": len(train), "val": len(val)},
        "images_per_class": {"train_aug": per_class(train_aug), "train": per_class(train), "val": per_class(val)},
        "multilabel": {"train_aug": sum(len(r.classes) > 1 for r in train_aug),
                       "val": sum(len(r.classes) > 1 for r in val)},
        "cooccurrence": {"train_aug": cooc(train_aug), "val": cooc(val)},
        "scenes": {"train_aug": _tally(r.scene for r in train_aug), "val": _tally(r.scene for r in val)},
        "pool": {
            "total": len(pool),
            "kinds": _tally(r.kind for r in pool),
            "hard_contexts": _tally(r.scene for r in pool if r.kind == "hard"),
            "positives_per_class": _tally(str(row["classes"]) for row in pool_rows if row["kind"] == "positive"),
        },
    }


def _tally(items) -> dict[str, int]:  # type: ignore[no-untyped-def]
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items()))


def readme(spec: BenchmarkSpec) -> str:
    ctx = "\n".join(f"  {c:10s} -> {', '.join(CONTEXTS[c]) or '(none: control class, neutral scenes)'}"
                    for c in CLASSES)
    counts_ = spec.pool_counts()
    return f"""woodseg spurious-correlation benchmark, version {_spec.BENCHMARK_VERSION}
================================================================

A procedurally generated miniature of the problem W-OoD (Lee et al., CVPR 2022) addresses: each
foreground class co-occurs with its own background context, so a classifier trained on image-level
labels learns the context as evidence for the class and its CAMs bleed into it. The candidate OoD pool
holds hard OoD images (the contexts without their objects), easy OoD images (unrelated scenes) and a
known share of hidden positives.

Classes and contexts:
{ctx}

Generated by `python -m woodseg.data.benchmark` (woodseg.data.benchmark.ensure_benchmark) from
scikit-image's and scikit-learn's bundled textures and photographs (grass, gravel, brick, astronaut,
chelsea, coffee, rocket, hubble_deep_field, immunohistochemistry, retina, colorwheel, logo, camera, coins,
moon, horse silhouette; china.jpg, flower.jpg). Deterministic for its spec; spec hash {spec.hash()}.

Images: {spec.height}x{spec.width}. train_aug {spec.n_train_aug} (train: {spec.n_train} of them), val {spec.n_val}.
Co-occurrence rate {spec.cooccurrence}, two-class images {spec.multilabel_rate}.
OoD pool: {spec.n_pool} images = {counts_['hard']} hard + {counts_['easy']} easy + {counts_['positive']} positive.

Layout: Pascal VOC (JPEGImages, Annotations, SegmentationClass with 255 = void boundary band,
ImageSets/Segmentation/{{train_aug,train,val}}.txt, classes.txt), image_truth.csv (scene of every
image), ood_pool/ (images/, masks/, pool.txt in the official OoD-list format, truth.csv kept apart from
the images), manifest.json (full spec, library versions, counts, checksum of all other files).
"""
