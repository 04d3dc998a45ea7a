"""Named benchmark variants: the default is ``BenchmarkSpec()`` unchanged, the others change only what they name."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from woodseg.data.benchmark import BenchmarkSpec, build_benchmark, ensure_benchmark, read_pool_truth
from woodseg.data.benchmark.spec import BENCHMARK_VERSION
from woodseg.data.benchmark.variants import OOD_SOURCES, VARIANTS, context_only_list, get_variant
from woodseg.data.ood_list import read_ood_list

V20_DEFAULT_KEY = "v2.0-ce5db54ddcdd"
"""The cache key of the default benchmark of v2.0, pinned: a change to a default parameter shows here."""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_default_variant_is_the_benchmark() -> None:
    spec = get_variant("default").spec()
    assert spec == BenchmarkSpec()
    assert BENCHMARK_VERSION == "2.0", "a new version: re-pin V20_DEFAULT_KEY and the plan below"
    assert spec.folder_name() == BenchmarkSpec().folder_name() == V20_DEFAULT_KEY
    assert get_variant("default").ood_source == "mined"
    assert get_variant("default").spec(seed=3, scale=0.5) == BenchmarkSpec(seed=3).scaled(0.5)


def test_default_variant_generates_the_pinned_v20_plan(tmp_path: Path) -> None:
    # the per-image plan (scenes, classes, objects) and the pool's truth, pinned from v2.0: a change to what
    # the generator draws must come with a BENCHMARK_VERSION bump (and a re-pin)
    root = build_benchmark(get_variant("default").spec(scale=0.04), tmp_path / "d")
    assert _sha(root / "image_truth.csv") == "746685edbb4a974a6a13ca4ff9c01451a18058233b784273eab79a506d8b4f24"
    assert _sha(root / "ood_pool" / "truth.csv") == (
        "40c72b69b5b6e195bc5700e9118cf6b52719defc9eab5910e3bc267699147e78")


def test_variants_change_only_what_they_name() -> None:
    default = BenchmarkSpec().to_dict()
    hashes = set()
    for v in VARIANTS.values():
        assert v.ood_source in OOD_SOURCES
        d = v.spec().to_dict()
        changed = {k for k in d if d[k] != default[k]}
        assert changed == set(v.overrides), v.name
        hashes.add((v.spec().hash(), v.ood_source))
    assert len(hashes) == len(VARIANTS)  # no two variants are the same experiment
    small = get_variant("small-strong-list").spec()
    assert all(s < d for s, d in zip(small.object_scale, BenchmarkSpec().object_scale, strict=True))
    assert small.cooccurrence > BenchmarkSpec().cooccurrence
    with pytest.raises(ValueError, match="small-strong-list"):
        get_variant("nope")


def test_context_only_list_is_balanced_hard_ood(tmp_path: Path) -> None:
    root = ensure_benchmark(BenchmarkSpec.tiny(n_pool=60), cache_dir=tmp_path / "cache")
    truth = read_pool_truth(root)
    n_hard = sum(t.kind == "hard" for t in truth.values())
    dest = context_only_list(root, tmp_path / "ctx.txt", 12, seed=0)
    entries = read_ood_list(dest, root / "ood_pool").ids
    by_path = {t.path: t for t in truth.values()}
    assert len(entries) == 12 == len(set(entries))
    assert all(by_path[e].kind == "hard" and not by_path[e].classes for e in entries)
    counts = Counter(by_path[e].context for e in entries)
    assert max(counts.values()) - min(counts.values()) <= 1  # round robin over the contexts
    assert context_only_list(root, tmp_path / "again.txt", 12, seed=0).read_text() == dest.read_text()
    everything = read_ood_list(context_only_list(root, tmp_path / "all.txt", 10_000), root / "ood_pool").ids
    assert len(everything) == n_hard


def test_cli_variant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from woodseg.data.benchmark.__main__ import main

    assert main(["--list-variants"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in VARIANTS) and V20_DEFAULT_KEY.split("-", 1)[1] in out
    assert main(["--variant", "nope"]) == 2
    assert "unknown benchmark variant" in capsys.readouterr().err
    assert main(["--tiny", "--variant", "small-strong-list", "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "variant 'small-strong-list', OoD list: context_only" in out
    spec = BenchmarkSpec.tiny(**VARIANTS["small-strong-list"].overrides)
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["spec"] == spec.to_dict()
