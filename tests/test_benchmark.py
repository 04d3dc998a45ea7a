"""The embedded spurious-correlation benchmark: labels, masks, splits, pool truth, determinism, cache."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from woodseg.data.benchmark import (
    BENCHMARK_VERSION,
    CLASSES,
    CONTEXTS,
    BenchmarkSpec,
    build_benchmark,
    check_benchmark,
    default_cache_dir,
    ensure_benchmark,
    generation_count,
    read_image_truth,
    read_pool_truth,
)
from woodseg.data.benchmark import generate as bgen
from woodseg.data.benchmark import spec as bspec
from woodseg.data.benchmark.plan import plan_pool, plan_split
from woodseg.data.images import load_image, load_mask
from woodseg.data.ood_list import read_ood_list
from woodseg.data.voc import read_voc

TINY = BenchmarkSpec.tiny()
MICRO = BenchmarkSpec.tiny(n_train_aug=6, n_train=2, n_val=2, n_pool=6, height=48, width=48)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_benchmark(TINY, cache_dir=tmp_path_factory.mktemp("bench-cache"))


def _mask_classes(mask: np.ndarray) -> set[str]:
    return {CLASSES[int(v) - 1] for v in np.unique(mask) if v not in (0, 255)}


# -- content --------------------------------------------------------------------------------------------

def test_masks_match_xml_labels(tiny_root: Path) -> None:
    ds = read_voc(tiny_root)
    assert ds.class_names == CLASSES
    ids = ds.ids("train_aug") + ds.ids("val")
    assert ids
    for i in ids:
        mask = load_mask(ds.mask_path(i))
        assert mask.shape == (TINY.height, TINY.width)
        assert set(np.unique(mask)) <= set(range(len(CLASSES) + 1)) | {255}
        labelled = {c for c, v in zip(CLASSES, ds.label(i), strict=True) if v}
        assert labelled, i
        assert _mask_classes(mask) == labelled, i
        img = load_image(ds.image_path(i))
        assert img.shape == (TINY.height, TINY.width, 3)


def test_void_band_lies_on_object_boundaries(tiny_root: Path) -> None:
    ds = read_voc(tiny_root)
    seen_void = False
    for i in ds.ids("train_aug"):
        mask = load_mask(ds.mask_path(i)).astype(np.int16)
        void = mask == 255
        seen_void |= bool(void.any())
        padded = np.pad(mask, 1, mode="edge")
        neighbours = [padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]]
        obj = (mask > 0) & ~void
        for n in neighbours:
            # an object pixel never touches background or another class directly: the band separates them
            assert not (obj & ((n == 0) | ((n > 0) & (n != 255) & (n != mask)))).any(), i
        # void only where objects are (a band on their boundary), never the bulk of them
        assert void.sum() < 0.75 * (mask > 0).sum(), i
    assert seen_void


def test_void_band_is_the_inner_boundary() -> None:
    from woodseg.data.benchmark.compose import void_band

    labels = np.zeros((9, 9), np.uint8)
    labels[2:7, 2:7] = 3
    ring = np.zeros((9, 9), bool)
    ring[2:7, 2:7] = True
    ring[3:6, 3:6] = False
    assert (void_band(labels, 1) == ring).all()
    two = np.zeros((9, 9), bool)
    two[2:7, 2:7] = True
    two[4, 4] = False
    assert (void_band(labels, 2) == two).all()
    assert not void_band(np.zeros((5, 5), np.uint8), 1).any()


def test_masks_are_written_as_save_palette_png_writes_them(tmp_path: Path) -> None:
    from woodseg.data.palette import save_palette_png

    mask = np.zeros((20, 30), np.uint8)
    mask[3:9, 4:20] = 5
    mask[2, 4:20] = 255
    save_palette_png(tmp_path / "ref.png", mask)
    assert bgen.mask_png_bytes(mask) == (tmp_path / "ref.png").read_bytes()


def test_xml_objects_have_valid_boxes(tiny_root: Path) -> None:
    truth = read_image_truth(tiny_root)
    for i, t in truth.items():
        root = ET.parse(tiny_root / "Annotations" / f"{i}.xml").getroot()
        objs = root.findall("object")
        assert len(objs) == t.n_objects
        mask = load_mask(tiny_root / "SegmentationClass" / f"{i}.png")
        for o in objs:
            box = o.find("bndbox")
            x0, y0, x1, y1 = (int(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            assert 1 <= x0 <= x1 <= TINY.width and 1 <= y0 <= y1 <= TINY.height
            k = CLASSES.index(o.findtext("name")) + 1
            region = mask[y0 - 1:y1, x0 - 1:x1]
            assert (region == k).any() or (region == 255).any()


def test_pool_truth_and_masks(tiny_root: Path) -> None:
    truth = read_pool_truth(tiny_root)
    counts = TINY.pool_counts()
    assert len(truth) == TINY.n_pool
    assert {k: sum(t.kind == k for t in truth.values()) for k in counts} == counts
    for t in truth.values():
        mask = load_mask(tiny_root / "ood_pool" / "masks" / f"{t.id}.png")
        present = _mask_classes(mask)
        if t.kind == "positive":
            assert present and present == set(t.classes), t
        else:
            assert not present and not t.classes and not (mask > 0).any(), t
        if t.kind == "hard":
            assert t.context in bspec.CONTEXT_SCENES and t.context_classes, t
            assert all(t.context in CONTEXTS[c] for c in t.context_classes)
        if t.kind == "easy":
            assert t.context in bspec.NEUTRAL_SCENES and not t.context_classes, t


def test_read_ood_list_reads_the_pool(tiny_root: Path) -> None:
    ood = read_ood_list(tiny_root / "ood_pool" / "pool.txt", tiny_root / "ood_pool")
    truth = read_pool_truth(tiny_root)
    assert len(ood) == TINY.n_pool
    assert ood.ids == [t.path for t in truth.values()]
    assert all(p.is_file() for p in ood.paths)
    assert load_image(ood.paths[0]).shape == (TINY.height, TINY.width, 3)


# -- splits and rates -----------------------------------------------------------------------------------

def test_splits_and_counts(tiny_root: Path) -> None:
    ds = read_voc(tiny_root)
    train_aug, train, val = set(ds.ids("train_aug")), set(ds.ids("train")), set(ds.ids("val"))
    assert train <= train_aug
    assert not (val & train_aug)
    assert (len(train_aug), len(train), len(val)) == (TINY.n_train_aug, TINY.n_train, TINY.n_val)
    assert (ds.class_counts("train_aug") > 0).all()
    manifest = json.loads((tiny_root / "manifest.json").read_text())
    assert manifest["version"] == BENCHMARK_VERSION
    assert manifest["spec"] == TINY.to_dict()
    assert manifest["counts"]["splits"] == {"train_aug": TINY.n_train_aug, "train": TINY.n_train, "val": TINY.n_val}
    assert manifest["counts"]["images_per_class"]["train_aug"] == {
        c: int(n) for c, n in zip(CLASSES, ds.class_counts("train_aug"), strict=True)}


def test_cooccurrence_on_disk(tiny_root: Path) -> None:
    truth = read_image_truth(tiny_root)
    judged = []
    for t in truth.values():
        own = {s for c in t.classes for s in CONTEXTS[c]}
        expected = (t.scene in own) if own else None
        assert t.in_context == expected, t
        if expected is not None:
            judged.append(expected)
    rate = float(np.mean(judged))
    assert abs(rate - TINY.cooccurrence) < 0.1, rate


@pytest.mark.parametrize("rate", [0.6, 0.85])
def test_cooccurrence_and_multilabel_rates_in_the_plan(rate: float) -> None:
    spec = BenchmarkSpec(n_train_aug=600, n_train=10, n_val=0, n_pool=0, cooccurrence=rate)
    recipes = plan_split(spec, "train_aug")
    judged = [r.in_context for r in recipes if r.in_context is not None]
    assert abs(np.mean(judged) - rate) < 0.03
    assert sum(len(r.classes) == 2 for r in recipes) == round(600 * spec.multilabel_rate)
    per_class = [sum(c in r.classes for r in recipes) for c in CLASSES]
    assert min(per_class) >= 100
    off = [r for r in recipes if r.in_context is False]
    assert all(r.scene not in {s for c in r.classes for s in CONTEXTS[c]} for r in off)


def test_pool_plan_is_balanced() -> None:
    spec = BenchmarkSpec(n_train_aug=6, n_train=1, n_val=0, n_pool=1200)
    recipes = plan_pool(spec)
    kinds = [r.kind for r in recipes]
    assert kinds.count("positive") == 180 and kinds.count("hard") == 540 and kinds.count("easy") == 480
    hard = [r.scene for r in recipes if r.kind == "hard"]
    assert {hard.count(s) for s in bspec.CONTEXT_SCENES} == {90}


# -- determinism and cache ------------------------------------------------------------------------------

def test_generation_is_deterministic(tmp_path: Path) -> None:
    a = build_benchmark(MICRO, tmp_path / "a")
    b = build_benchmark(MICRO, tmp_path / "b")
    ma = json.loads((a / "manifest.json").read_text())
    mb = json.loads((b / "manifest.json").read_text())
    assert ma["checksum"] == mb["checksum"]
    assert bgen.tree_checksum(a)[0] == ma["checksum"]
    for rel in ("JPEGImages/b2_000000.jpg", "SegmentationClass/b2_000003.png", "ood_pool/truth.csv"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    c = build_benchmark(BenchmarkSpec.tiny(**{**MICRO.to_dict(), "seed": 1}), tmp_path / "c")
    assert json.loads((c / "manifest.json").read_text())["checksum"] != ma["checksum"]


def test_cache_reuses_a_complete_copy(tmp_path: Path) -> None:
    root = ensure_benchmark(MICRO, cache_dir=tmp_path)
    assert root.parent == tmp_path and root.name == MICRO.folder_name()
    n = generation_count()
    mtime = (root / "manifest.json").stat().st_mtime_ns
    again = ensure_benchmark(MICRO, cache_dir=tmp_path)
    assert again == root
    assert generation_count() == n
    assert (root / "manifest.json").stat().st_mtime_ns == mtime
    assert check_benchmark(root, MICRO, verify=True) is None


def test_cache_regenerates_for_another_spec_or_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ensure_benchmark(MICRO, cache_dir=tmp_path)
    n = generation_count()
    other = ensure_benchmark(BenchmarkSpec.tiny(**{**MICRO.to_dict(), "cooccurrence": 0.5}), cache_dir=tmp_path)
    assert other != first and generation_count() == n + 1
    monkeypatch.setattr(bspec, "BENCHMARK_VERSION", "0.0-test")
    assert check_benchmark(first, MICRO) is not None  # the old version's copy is not accepted
    newer = ensure_benchmark(MICRO, cache_dir=tmp_path)
    assert newer not in (first, other) and generation_count() == n + 2
    assert json.loads((newer / "manifest.json").read_text())["version"] == "0.0-test"
    assert first.is_dir()  # other versions' copies are left alone


def test_interrupted_generation_leaves_nothing_acceptable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = bgen.render_recipe
    calls = {"n": 0}

    def crash_midway(recipe, spec):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt("simulated crash")
        return real(recipe, spec)

    monkeypatch.setattr(bgen, "render_recipe", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        ensure_benchmark(MICRO, cache_dir=tmp_path)
    root = tmp_path / MICRO.folder_name()
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary folder is gone too
    monkeypatch.setattr(bgen, "render_recipe", real)
    n = generation_count()
    assert ensure_benchmark(MICRO, cache_dir=tmp_path) == root
    assert generation_count() == n + 1 and check_benchmark(root, MICRO) is None


def test_incomplete_or_tampered_copies_are_regenerated(tmp_path: Path) -> None:
    root = tmp_path / MICRO.folder_name()
    (root / "JPEGImages").mkdir(parents=True)  # a half folder, e.g. from a hard kill of an old writer
    (root / "JPEGImages" / "b1_000000.jpg").write_bytes(b"partial")
    assert check_benchmark(root, MICRO) is not None
    stale_tmp = tmp_path / f".{root.name}.tmp-dead"
    stale_tmp.mkdir()
    n = generation_count()
    assert ensure_benchmark(MICRO, cache_dir=tmp_path) == root
    assert generation_count() == n + 1 and check_benchmark(root, MICRO) is None
    next(iter((root / "ood_pool" / "images").iterdir())).unlink()  # a file lost later
    assert check_benchmark(root, MICRO) is not None
    ensure_benchmark(MICRO, cache_dir=tmp_path)
    assert generation_count() == n + 2 and check_benchmark(root, MICRO, verify=True) is None


def test_a_foreign_folder_is_never_replaced(tmp_path: Path) -> None:
    from woodseg.errors import DataError

    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "thesis.tex").write_text("precious")
    with pytest.raises(DataError):
        build_benchmark(MICRO, dest)
    assert (dest / "thesis.tex").read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]


def test_default_cache_dir_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WOODSEG_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "benchmark"
    monkeypatch.delenv("WOODSEG_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "woodseg" / "benchmark"


# -- spec and entry point -------------------------------------------------------------------------------

def test_spec_identity_and_presets() -> None:
    spec = BenchmarkSpec()
    assert (spec.height, spec.width, spec.n_train_aug, spec.n_train, spec.n_val, spec.n_pool) == (
        160, 160, 900, 200, 200, 1200)
    assert BenchmarkSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.hash() != BenchmarkSpec(seed=1).hash()
    half = spec.scaled(0.5)
    assert (half.n_train_aug, half.n_train, half.n_val, half.n_pool) == (450, 100, 100, 600)
    with pytest.raises(ValueError):
        BenchmarkSpec(n_train=10, n_train_aug=5)
    with pytest.raises(ValueError):
        BenchmarkSpec(cooccurrence=1.5)


def test_cli_reports_counts(tiny_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from woodseg.data.benchmark.__main__ import main

    n = generation_count()
    assert main(["--tiny", "--out", str(tiny_root)]) == 0  # a valid copy of the same spec: reused
    out = capsys.readouterr().out
    assert generation_count() == n
    assert "reused" in out and "'train_aug': 36" in out and "pool:" in out
    assert os.fspath(tiny_root) in out
