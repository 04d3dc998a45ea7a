"""benchmarks/paper_experiments.py: the `variants` experiment's runs, its mask-free signals, its ready-made
OoD lists and the rebuild of ``variants.md`` from the per-variant files."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import benchmark_script
from woodseg.config import load_config
from woodseg.data.benchmark import CLASSES, BenchmarkSpec, ensure_benchmark, read_pool_truth
from woodseg.data.benchmark.spec import BENCHMARK_VERSION
from woodseg.data.benchmark.variants import get_variant
from woodseg.data.ood_list import read_ood_list


def _module():
    return benchmark_script("paper_experiments")


def test_variants_runs_and_context_only_list(tmp_path: Path) -> None:
    pe = _module()
    keys = [r.key for r in pe.variants()]
    assert keys == ["baseline", "a", "t5b", "t5c", "t5d", "t5e", "paper"]  # Table 1 without official + Table 5
    assert [r.key for r in pe.variants(official=True)] == [*keys, "official"]
    t5 = {r.key: r for r in pe.table5()}
    for run in pe.variants(official=True):
        if run.key in t5:  # the same run folder as Table 5's (and Table 1's a / paper): the same config
            assert run.overrides == t5[run.key].overrides
    assert {r.key: r.overrides for r in pe.table1()}["official"] == pe.variants(True)[-1].overrides
    assert next(r for r in pe.variants() if r.key == "t5b").overrides["wood"] == {
        "use_cls_ood": True, "use_d_in": False, "use_d_ood": False}
    assert "variants" not in [n for n in pe.EXPERIMENTS if n not in pe.NOT_IN_ALL]  # `all` skips it

    root = ensure_benchmark(BenchmarkSpec.tiny(n_pool=60), cache_dir=tmp_path / "cache")
    base = load_config("demo", [f"data.root={root}", "demo.ood_per_class=1"])
    seeds = pe.Seeds(base, tmp_path / "work", False, get_variant("small-strong-list"), "tag")
    listed = read_ood_list(seeds.mined(0), root / "ood_pool").ids  # no F_in is trained for a ready-made list
    truth = {t.path: t for t in read_pool_truth(root).values()}
    assert len(listed) == 6 and all(truth[e].kind == "hard" for e in listed)
    assert pe.list_composition(seeds, 0) == "6 images, 0 positive, 6 hard, 0 easy"
    assert not (tmp_path / "work" / "seed0" / "baseline").exists()
    spec = pe.variant_spec(base, get_variant("small-strong-list"))
    assert spec.object_scale == (0.25, 0.5) and spec.cooccurrence == 0.95
    assert pe.variant_spec(base, None) == BenchmarkSpec()


def test_unreviewed_variant_keeps_hidden_positives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The failure-case variant mines as the paper does but its reviewer rejects nothing."""
    pe = _module()
    root = ensure_benchmark(BenchmarkSpec.tiny(n_pool=60), cache_dir=tmp_path / "cache")
    base = load_config("demo", [f"data.root={root}", "demo.ood_per_class=1"])
    truth = read_pool_truth(root)
    positive = next(t for t in truth.values() if t.classes)
    entry, cls = positive.path, sorted(positive.classes)[0]
    reviewers = {}

    def fake_mine(f_in: Path, pool: Any, pool_root: Path, out: Path, *, is_positive: Any, **_: Any) -> Any:
        reviewers[out.parent.parent.name] = is_positive
        return type("Mined", (), {"ood_list": out / "ood_list.txt"})()

    monkeypatch.setattr(pe, "mine_hard_ood", fake_mine)
    monkeypatch.setattr(pe, "config_scoring_long_side", lambda *_: None)
    monkeypatch.setattr(pe.Seeds, "f_in", lambda self, seed, din=None: tmp_path / "last.pt")
    for name in ("default", "default-unreviewed"):
        pe.Seeds(base, tmp_path / name, False, get_variant(name), "tag").mined(0)
    assert reviewers["default"](entry, cls) is True  # the simulated reviewer rejects a hidden positive
    assert reviewers["default-unreviewed"](entry, cls) is False  # no review: it stays in the list


def _constant_classifier(run: Path, seed: int | None = None) -> None:
    """A classifier with zero weights (p(c) = 0.5 everywhere), or random ones for ``seed``."""
    import torch

    from woodseg.config import ModelConfig
    from woodseg.models.cam_net import build_cam_net, classifier_checkpoint

    torch.manual_seed(seed or 0)
    cfg = ModelConfig(backbone="resnet10", weights=None, freeze_bn=True, frozen_stages=0, channels_last=False)
    net = build_cam_net(cfg, len(CLASSES))
    if seed is None:
        with torch.no_grad():
            net.classifier.weight.zero_()
    (run / "classifier").mkdir(parents=True, exist_ok=True)
    torch.save(classifier_checkpoint(net, CLASSES, {"step": 0, "run_fingerprint": "test"}), run / "classifier" / "last.pt")


def _flat_seeds(run: Path, ds: Any, ids: list[str]) -> None:
    from woodseg.seeds.store import Seed, save_seed

    for image_id in ids:
        keys = np.flatnonzero(ds.label(image_id))
        maps = np.full((len(keys), 16, 16), 0.5, np.float32)  # flat: the peak region is the whole map
        save_seed(run / "seeds" / f"{image_id}.npz", Seed(keys, maps[:, ::4, ::4], maps, np.array([1.0], np.float32),
                                                         (16, 16)))


def test_mask_free_signals_per_run_and_their_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from woodseg.data.build import load_dataset

    pe = _module()
    root = ensure_benchmark(BenchmarkSpec.tiny(n_pool=60), cache_dir=tmp_path / "cache")
    base = load_config("demo", [f"data.root={root}", "demo.ood_per_class=1", "train.batch_size=8"])
    seeds = pe.Seeds(base, tmp_path / "work", False, get_variant("default-list"), "tag")
    ds = load_dataset(base.data)
    paper = next(r for r in pe.variants() if r.key == "paper")
    folder = pe.run_dir(paper, 0, seeds)
    assert folder == tmp_path / "work" / "seed0" / "paper"
    _constant_classifier(folder)
    _flat_seeds(folder, ds, ds.ids("train"))

    sig = pe.mask_free_signals(paper, 0, seeds, "train")
    n_hard = sum(t.kind == "hard" for t in read_pool_truth(root).values())
    assert sig["context_pc"] == pytest.approx(0.5)  # zero logits: p(c) = 0.5 on every context image
    assert sig["n_context"] == n_hard - 6  # the seed's OoD list (6 hard images) is left out
    assert sig["peak_share"] == pytest.approx(1.0) and sig["n_pairs"] > 0
    assert 0 < sig["heldout_map"] <= 1 and sig["n_heldout"] == len(ds.ids("val"))
    assert (folder / "eval" / "signals.json").is_file()

    def fail(*_: Any, **__: Any) -> None:
        raise AssertionError("recomputed")

    assert sig["ood_residual"] == 1.0 and sig["n_ood"] == 6  # zero logits: p(c) = 0.5 on the whole list
    monkeypatch.setattr(pe, "run_signals", fail)
    assert pe.mask_free_signals(paper, 0, seeds, "train") == sig  # cached: nothing recomputed
    cache = folder / "eval" / "signals.json"
    older = json.loads(cache.read_text())  # a cache from before the OoD residual gets it added alone
    for k in ("ood_residual", "n_ood", "ood_suspects"):
        del older["signals"][k]
    cache.write_text(json.dumps(older))
    assert pe.mask_free_signals(paper, 0, seeds, "train") == sig
    _constant_classifier(folder, seed=3)  # a retrained run
    with pytest.raises(AssertionError, match="recomputed"):
        pe.mask_free_signals(paper, 0, seeds, "train")


def _signals(heldout_map: float, peak: float = 0.3, ctx: float = 0.4, residual: float | None = None) -> dict[str, Any]:
    return {"heldout_map": heldout_map, "heldout_ap": {}, "peak_share": peak, "n_heldout": 10, "n_pairs": 12,
            "context_pc": ctx, "n_context": 30, "ood_residual": residual, "n_ood": 0 if residual is None else 20,
            "ood_suspects": [] if residual is None else ["x"] * round(20 * residual)}


def _rows(pe: Any, name: str, seed: int, miou: dict[str, float], maps: dict[str, float],
          peaks: dict[str, float] | None = None, residuals: dict[str, float] | None = None) -> list[dict[str, Any]]:
    runs = pe.variants()
    results = {r.key: {"train": {"miou": miou.get(r.key, 0.3), "precision": 0.4, "recall": 0.5, "f1": 0.45,
                                 "threshold": 0.2}} for r in runs}
    signals = {r.key: _signals(maps.get(r.key, 0.8), (peaks or {}).get(r.key, 0.3), 0.4,
                               (residuals or {}).get(r.key)) for r in runs}
    return pe.per_run_rows(get_variant(name), "tag", "abc", seed, runs, results, signals, ["train"])


def test_per_run_rows_carry_metrics_signals_and_the_rule(tmp_path: Path) -> None:
    pe = _module()
    rows = _rows(pe, "default", 1, {"baseline": 0.25, "paper": 0.31}, {"baseline": 0.80, "paper": 0.70},
                 {"paper": 0.25})
    by_key = {r["key"]: r for r in rows}
    assert len(rows) == 7 and set(by_key) == {r.key for r in pe.variants()}
    assert by_key["paper"]["miou"] == 31.0 and by_key["paper"]["heldout_map"] == 70.0
    assert by_key["paper"]["benchmark_version"] == BENCHMARK_VERSION and by_key["paper"]["seed"] == 1
    assert by_key["paper"]["safeguard_warn"] == 1  # peak share 5 points below F_in's: the shipped rule fires
    assert by_key["a"]["safeguard_warn"] == 0 and by_key["baseline"]["safeguard_warn"] == ""
    section = pe.signals_section(pe.variants(), rows, "train")
    assert "| (f) + W-OoD (paper): all terms | 70.0 +- 0.0 | 25.0 +- 0.0 | 40.0 +- 0.0 | - | 1 |" in section
    # the OoD residual: W-OoD's own share of its list still at p(c) >= 0.5, judged against a bound
    dirty = {r["key"]: r for r in _rows(pe, "default", 2, {}, {}, None, {"paper": 0.3, "t5b": 0.05})}
    assert dirty["paper"]["ood_residual"] == 30.0 and dirty["paper"]["safeguard_warn"] == 1
    assert dirty["t5b"]["ood_residual"] == 5.0 and dirty["t5b"]["safeguard_warn"] == 0
    assert dirty["a"]["ood_residual"] == "" and dirty["a"]["safeguard_warn"] == 0
    assert [r.key for r in pe.variants() if pe.trains_on_ood(r)] == ["t5b", "t5d", "t5e", "paper"]


def _write_variant(pe: Any, folder: Path, name: str, rows: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.md").write_text(f"# Variant '{name}'\n\n## split 'train'\n\nbody of {name}\n")
    (folder / f"{name}.csv").write_text(pe.rows_csv(rows))


def test_rebuild_keeps_every_variant_of_this_version(tmp_path: Path) -> None:
    pe = _module()
    folder = tmp_path / "variants"
    _write_variant(pe, folder, "small-strong-list", _rows(pe, "small-strong-list", 0, {"paper": 0.2}, {}))
    _write_variant(pe, folder, "default", _rows(pe, "default", 0, {"paper": 0.4}, {})
                   + _rows(pe, "default", 1, {"paper": 0.5}, {}))
    (folder / "strong-context.md").write_text("# Variant 'strong-context'\n")  # an old file: other CSV format
    (folder / "strong-context.csv").write_text("experiment,benchmark,split,run,metric,mean,std,values\n"
                                               "variants,v1.1,train,F_in,miou,21.8,0.0,21.8\n")
    assert pe.rebuild_variants(tmp_path) == ["default", "small-strong-list"]  # the registry's order
    md = (tmp_path / "variants.md").read_text()
    assert "Left out (files of another benchmark version or format; rerun them): strong-context." in md
    assert md.index("## Variant 'default'") < md.index("## Variant 'small-strong-list'")
    assert "### split 'train'" in md and "body of default" in md
    assert "| default | 0 1 |" in md and "| 45.0 |" in md  # paper's mean over seeds 0 and 1
    rows = list(csv.DictReader(io.StringIO((tmp_path / "variants.csv").read_text())))
    assert len(rows) == 21 and {r["variant"] for r in rows} == {"default", "small-strong-list"}


def test_rebuild_waits_for_another_invocation(tmp_path: Path) -> None:
    pe = _module()
    folder = tmp_path / "variants"
    _write_variant(pe, folder, "default", _rows(pe, "default", 0, {}, {}))
    done = threading.Event()

    def rebuild() -> None:
        pe.rebuild_variants(tmp_path)
        done.set()

    with pe.locked(folder):  # another invocation is rebuilding
        worker = threading.Thread(target=rebuild)
        worker.start()
        time.sleep(0.3)
        assert not done.is_set() and not (tmp_path / "variants.md").exists()
        _write_variant(pe, folder, "small-objects", _rows(pe, "small-objects", 0, {}, {}))  # it finishes its file
    worker.join(10)
    assert done.is_set() and "## Variant 'small-objects'" in (tmp_path / "variants.md").read_text()


def test_a_diverged_run_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    from woodseg.errors import TrainingError

    pe = _module()
    row = {"miou": 0.4, "precision": 0.5, "recall": 0.6, "f1": 0.55, "threshold": 0.3}
    protocol = {"method": "cam", "scales": [1.0], "flip": True}

    def fake(run: Any, seed: int, seeds: Any, splits: list[str]) -> dict[str, Any]:
        if run.key == "clam100":
            raise TrainingError("runs/clam100/classifier: loss became non-finite at step 6; the last good checkpoint")
        return {"train": row, "protocol": protocol}

    monkeypatch.setattr(pe, "run_one", fake)
    runs = pe.lambda_sweep()
    results = pe.run_all("lambda", runs, None, [0], ["train"])
    assert results["lambda 0.7"] == [{"diverged": "runs/clam100/classifier: loss became non-finite at step 6"}]
    md, table = pe.summarise("lambda", runs, results, ["train"], "cmd", "tag", [0], 1.0)
    assert "| lambda 0.7 | diverged (1 of 1 seeds: loss became non-finite at step 6) |" in md
    assert "| lambda 0.07 | 40.0 +- 0.0 |" in md and "lambda 0.7" not in table
