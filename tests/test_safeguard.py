"""The mask-free safeguard: AP, CAM peak share, the rule, and the report on real run folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from woodseg.evaluate.safeguard import (
    Rule,
    RunSignals,
    average_precision,
    classification_ap,
    compare,
    peak_share,
)


def test_average_precision() -> None:
    assert average_precision(np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0])) == 1.0
    # positives ranked 1st and 3rd: (1/1 + 2/3) / 2
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1])) == pytest.approx(5 / 6)
    assert np.isnan(average_precision(np.array([0.5, 0.4]), np.array([0, 0])))
    m, per = classification_ap(np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.3]]), np.array([[1, 0], [0, 1], [0, 0]]),
                               ["a", "b"])
    assert m == 1.0 and per == {"a": 1.0, "b": 1.0}
    with pytest.raises(ValueError, match="no class"):
        classification_ap(np.zeros((2, 1)), np.zeros((2, 1)), ["a"])



def test_peak_share_tells_a_compact_map_from_a_spread_one() -> None:
    yy, xx = np.mgrid[:32, :32]
    blob = np.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / 8.0)  # compact object
    spread = 0.4 + 0.6 * blob  # the same peak on a lit context
    keys = np.array([0, 2])
    present = np.array([True, False, True])
    shares = peak_share(np.stack([blob, spread]).astype(np.float32), keys, present)
    assert shares[0] > 0.5 and shares[1] < 0.1
    assert peak_share(np.stack([blob, spread]), keys, np.array([False, False, True])) == pytest.approx([shares[1]])
    assert peak_share(np.zeros((1, 4, 4)), np.array([0]), np.array([True])) == [0.0]


def _signals(m: float | None, p: float | None) -> RunSignals:
    return RunSignals(m, None, p, 10, 10)


MAP_RULE = Rule(map_drop=0.01, peak_drop=None, ood_residual_max=None)  # the earlier, held-out-mAP rule
PEAK_ONLY = Rule(ood_residual_max=None)


def test_default_rule_judges_the_peak_share_against_f_in_only() -> None:
    ok = compare({"W-OoD": _signals(0.70, 0.50), "F_in": _signals(0.80, 0.45),
                  "control": _signals(0.82, 0.55)}, "W-OoD", ["F_in", "control"])
    assert not ok["warn"] and ok["reasons"] == [] and "no warning" in ok["message"]  # mAP shown, not judged
    assert ok["deltas"]["F_in"]["peak_share"] == pytest.approx(0.05)
    assert ok["deltas"]["control"]["peak_share"] == pytest.approx(-0.05)  # the control is shown, not judged
    flat = compare({"W-OoD": _signals(0.80, 0.45), "F_in": _signals(0.80, 0.45)}, "W-OoD", ["F_in"], PEAK_ONLY)
    assert not flat["warn"]  # "not above" by zero: peak_drop 0 fires only on a real drop
    low = compare({"W-OoD": _signals(0.80, 0.40), "F_in": _signals(0.80, 0.45)}, "W-OoD", ["F_in"], PEAK_ONLY)
    assert low["warn"] and low["reasons"] == ["CAM peak share 40.0 < F_in 45.0"] and "WARNING" in low["message"]
    assert not compare({"W-OoD": _signals(0.80, 0.40), "F_in": _signals(0.80, 0.45)}, "W-OoD", ["F_in"],
                       Rule(peak_drop=0.1))["warn"]


def _with_residual(residual: float, n: int = 20) -> RunSignals:
    suspects = tuple(f"ood_{i}" for i in range(round(residual * n)))
    return RunSignals(0.80, None, 0.50, 10, 10, residual, n, suspects)


def test_default_rule_judges_wood_s_own_ood_residual() -> None:
    """Hidden positives in the OoD list resist BCE towards zero: above 10 % still at p(c) >= 0.5 warns."""
    f_in = _signals(0.80, 0.45)  # no residual of its own needed: the level is W-OoD's
    clean = compare({"W-OoD": _with_residual(0.05), "F_in": f_in}, "W-OoD", ["F_in"])
    assert not clean["warn"] and "OoD residual 5 %" in clean["message"]
    dirty = compare({"W-OoD": _with_residual(0.25), "F_in": f_in}, "W-OoD", ["F_in"])
    assert dirty["warn"] and dirty["reasons"] == [
        "25 % of the OoD images (5 of 20) still score p(c) >= 0.5 after training (more than 10 %)"]
    assert "hidden positives" in dirty["message"] and "ood_suspects" in dirty["message"]
    assert "check a few CAMs" not in dirty["message"]  # the peak share did not fire
    assert not compare({"W-OoD": _with_residual(0.25), "F_in": f_in}, "W-OoD", ["F_in"], PEAK_ONLY)["warn"]
    assert not compare({"W-OoD": _signals(0.80, 0.50), "F_in": f_in}, "W-OoD", ["F_in"])["warn"]  # no list: silent


def test_map_rule_fires_on_either_signal_against_any_reference() -> None:
    low_map = compare({"W-OoD": _signals(0.75, 0.50), "F_in": _signals(0.80, 0.45),
                       "control": _signals(0.79, 0.45)}, "W-OoD", ["F_in", "control"], MAP_RULE)
    assert low_map["warn"] and "WARNING" in low_map["message"]
    assert low_map["reasons"] == ["held-out mAP 75.0 < F_in 80.0"]  # the control is shown, not judged
    assert low_map["deltas"]["control"]["heldout_map"] == pytest.approx(-0.04)
    above_f_in = compare({"W-OoD": _signals(0.81, 0.50), "F_in": _signals(0.80, 0.45),
                          "control": _signals(0.84, 0.45)}, "W-OoD", ["F_in", "control"], MAP_RULE)
    assert not above_f_in["warn"]
    both = compare({"W-OoD": _signals(0.75, 0.50), "control": _signals(0.79, 0.45)}, "W-OoD", ["control"],
                   Rule(map_drop=0.01, peak_drop=None, references=("F_in", "control")))
    assert both["warn"]
    peak = {"W-OoD": _signals(None, 0.40), "F_in": _signals(None, 0.45)}
    assert not compare(peak, "W-OoD", ["F_in"], MAP_RULE)["warn"]
    strict = compare(peak, "W-OoD", ["F_in"], Rule(map_drop=0.01, peak_drop=0.02, ood_residual_max=None))
    assert strict["warn"] and "peak share" in strict["reasons"][0]


def _write_seeds(run: Path, ds: object, ids: list[str], spread: bool) -> None:
    from woodseg.data.images import load_mask
    from woodseg.seeds.store import Seed, save_seed

    for image_id in ids:
        mask = load_mask(ds.mask_path(image_id))  # type: ignore[attr-defined]
        keys = np.flatnonzero(ds.label(image_id))  # type: ignore[attr-defined]
        maps = np.stack([(mask == k + 1).astype(np.float32) for k in keys])
        if spread:
            maps = 0.6 + 0.4 * maps
        save_seed(run / "seeds" / f"{image_id}.npz",
                  Seed(keys, maps[:, ::4, ::4], maps, np.array([1.0], np.float32), mask.shape))


def test_safeguard_for_config_compares_wood_with_its_f_in(tiny_voc: Path, tmp_path: Path) -> None:
    from helpers import random_checkpoint, tiny_overrides
    from woodseg.config import load_config
    from woodseg.data.build import load_dataset
    from woodseg.data.ood_list import read_ood_list
    from woodseg.evaluate.safeguard import format_report, safeguard_for_config

    ds = load_dataset(load_config("demo", [f"data.root={tiny_voc}"]).data)
    ids = ds.ids("train")
    f_in = tmp_path / "f_in"
    ckpt = random_checkpoint(f_in)
    _write_seeds(f_in, ds, ids, spread=False)
    wood = tmp_path / "wood"
    (wood / "classifier").mkdir(parents=True)
    (wood / "classifier" / "last.pt").write_bytes(ckpt.read_bytes())  # same classifier: same held-out mAP
    _write_seeds(wood, ds, ids, spread=True)  # CAMs spread over the background
    cfg = load_config("demo", tiny_overrides(tiny_voc, wood, **{"train.init_from": ckpt, "wood.variant": "paper"}))
    report = safeguard_for_config(cfg, rule=MAP_RULE)
    assert report is not None and not report["warn"]  # same classifier: same held-out mAP
    assert report["deltas"]["F_in"]["heldout_map"] == 0.0
    assert report["deltas"]["F_in"]["peak_share"] < -0.2  # the spread CAMs are measured
    assert (wood / "eval" / "safeguard.json").is_file()
    default = safeguard_for_config(cfg, rule=PEAK_ONLY)  # the default rule judges the peak share
    assert default is not None and default["warn"] and "WARNING" in format_report(default)
    _write_seeds(wood, ds, ids, spread=False)
    assert not safeguard_for_config(cfg, rule=PEAK_ONLY)["warn"]  # type: ignore[index]
    # the OoD residual: the run trained L_cls on data.ood_list, so each run's share of it at p(c) >= 0.5
    w = safeguard_for_config(cfg)["runs"]["W-OoD"]  # type: ignore[index]
    n_ood = len(read_ood_list(cfg.data.ood_list, cfg.data.ood_root).ids)
    assert w["n_ood"] == n_ood > 0 and w["ood_residual"] == pytest.approx(len(w["ood_suspects"]) / n_ood)
    no_cls_ood = load_config("demo", tiny_overrides(tiny_voc, wood, **{
        "train.init_from": ckpt, "wood.variant": "paper", "wood.use_cls_ood": False}))
    assert safeguard_for_config(no_cls_ood)["runs"]["W-OoD"]["ood_residual"] is None  # type: ignore[index]
    assert safeguard_for_config(load_config("demo", tiny_overrides(tiny_voc, f_in))) is None  # F_in itself
