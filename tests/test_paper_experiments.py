"""benchmarks/paper_experiments.py: the `variants` experiment's runs and its ready-made OoD lists."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from woodseg.config import load_config
from woodseg.data.benchmark import BenchmarkSpec, ensure_benchmark, read_pool_truth
from woodseg.data.benchmark.variants import get_variant
from woodseg.data.ood_list import read_ood_list


def _module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "paper_experiments.py"
    spec = importlib.util.spec_from_file_location("paper_experiments", path)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["paper_experiments"] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_variants_runs_and_context_only_list(tmp_path: Path) -> None:
    pe = _module()
    keys = [r.key for r in pe.variants()]
    assert keys == ["baseline", "a", "paper", "official", "t5b"]
    t5b = next(r for r in pe.variants() if r.key == "t5b")
    assert t5b.overrides["wood"] == {"use_cls_ood": True, "use_d_in": False, "use_d_ood": False}
    assert "variants" not in [n for n in pe.EXPERIMENTS if n not in pe.NOT_IN_ALL]  # `all` skips it

    root = ensure_benchmark(BenchmarkSpec.tiny(n_pool=60), cache_dir=tmp_path / "cache")
    base = load_config("demo", [f"data.root={root}", "demo.ood_per_class=1"])
    seeds = pe.Seeds(base, tmp_path / "work", False, get_variant("small-strong-list"), "tag")
    listed = read_ood_list(seeds.mined(0), root / "ood_pool").ids  # no F_in is trained for a ready-made list
    truth = {t.path: t for t in read_pool_truth(root).values()}
    assert len(listed) == 6 and all(truth[e].kind == "hard" for e in listed)
    assert not (tmp_path / "work" / "seed0" / "baseline").exists()
    spec = pe.variant_spec(base, get_variant("small-strong-list"))
    assert spec.object_scale == (0.25, 0.5) and spec.cooccurrence == 0.95
    assert pe.variant_spec(base, None) == BenchmarkSpec()
