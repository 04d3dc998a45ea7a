"""benchmarks/safeguard_validation.py: candidate safeguard rules against the harmful W-OoD runs of the variants."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from helpers import benchmark_script
from woodseg.data.benchmark.spec import BENCHMARK_VERSION

sv = benchmark_script("safeguard_validation")
SHIPPED = "held-out mAP drop vs F_in > 1"  # the earlier shipped rule: the synthetic cases below are built on it
assert SHIPPED in {c.name for c in sv.CANDIDATES}
assert sv.CANDIDATES[0].name.startswith("shipped rule (safeguard.RULE): CAM peak share drop vs F_in")


def _row(variant: str, seed: int, key: str, miou: float, heldout_map: float, peak: float = 30.0,
         ctx: float = 40.0, version: str = BENCHMARK_VERSION) -> dict[str, Any]:
    return {"variant": variant, "benchmark_version": version, "seed": seed, "key": key, "run": f"run {key}",
            "split": "train", "miou": miou, "heldout_map": heldout_map, "peak_share": peak, "context_pc": ctx}


def _write(folder: Path, name: str, rows: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    (folder / f"{name}.csv").write_text(out.getvalue())


def _seed(variant: str, seed: int, f_in: tuple[float, float], control: tuple[float, float],
          wood: tuple[float, float], peak: tuple[float, float, float] = (30, 30, 30)) -> list[dict[str, Any]]:
    """(mIoU, held-out mAP) of F_in, the control and W-OoD (paper) of one seed."""
    return [_row(variant, seed, "baseline", *f_in, peak=peak[0]), _row(variant, seed, "a", *control, peak=peak[1]),
            _row(variant, seed, "paper", *wood, peak=peak[2])]


def test_confusion_counts_against_harmful_cases(tmp_path: Path) -> None:
    folder = tmp_path / "variants"
    _write(folder, "default", _seed("default", 0, (40, 80), (41, 82), (38, 76))  # harmful, mAP -4 vs F_in: hit
           + _seed("default", 1, (40, 80), (41, 82), (43, 79)))  # better than control, mAP -1 vs F_in: silent (> 1)
    _write(folder, "small-objects", _seed("small-objects", 0, (30, 70), (31, 72), (30, 71), peak=(30, 32, 25))
           + [_row("small-objects", 1, "paper", 20, 60)])  # harmful, mAP up vs F_in: a miss; seed 1 has no F_in
    # exactly 0.5 below the control: not harmful, but the mAP rule fires: a false alarm
    _write(folder, "strong-context", _seed("strong-context", 0, (40, 80), (40, 80), (39.5, 70)))
    (folder / "old.csv").write_text("experiment,benchmark,split,run,metric,mean,std,values\nvariants,v1.1,train,F,miou,1,0,1\n")
    _write(folder, "stale", _seed("stale", 0, (40, 80), (41, 82), (30, 60)))
    (folder / "stale.csv").write_text((folder / "stale.csv").read_text().replace(f",{BENCHMARK_VERSION},", ",1.1,"))

    assert sv.main(["--results", str(tmp_path)]) == 0
    md = (tmp_path / "safeguard_validation.md").read_text()
    assert "2 of 4 cases are harmful." in md
    assert f"| {SHIPPED} | 1 | 1 | 1 | 1 | 0 |" in md  # hits, misses, false alarms, correct silences
    assert "| CAM peak share drop vs control > 2 | 1 | 1 | 0 | 2 | 0 |" in md
    assert "old.csv (no per-run signal columns" in md and "stale.csv (another benchmark version)" in md
    assert "small-objects seed 1 run paper: no F_in or control row" in md
    assert "| default | 0 | paper | 40.0 | 41.0 | 38.0 | -3.0 | -2.0 | -4.0 | -6.0 |" in md
    assert "Command: `python benchmarks/safeguard_validation.py --results" in md
    rows = list(csv.DictReader(io.StringIO((tmp_path / "safeguard_validation.csv").read_text())))
    assert [(r["variant"], r["seed"], r["harmful"], r[f"fires: {SHIPPED}"]) for r in rows] == [
        ("default", "0", "1", "1"), ("default", "1", "0", "0"), ("small-objects", "0", "1", "0"),
        ("strong-context", "0", "0", "1")]


def test_without_a_harmful_case_it_says_so(tmp_path: Path) -> None:
    _write(tmp_path / "variants", "default", _seed("default", 0, (40, 80), (41, 82), (45, 70)))
    assert sv.main(["--results", str(tmp_path)]) == 0
    md = (tmp_path / "safeguard_validation.md").read_text()
    assert "**No harmful case**" in md and "cannot be validated without a harmful case" in md
    assert f"| {SHIPPED} | 0 | 0 | 1 | 0 | 0 |" in md  # mAP fell 10 while seeds improved: a false alarm


def test_missing_signals_are_not_evaluable_and_no_input_is_a_clear_error(tmp_path: Path, capsys) -> None:
    rows = _seed("default", 0, (40, 80), (41, 82), (38, 76))
    rows[2]["heldout_map"] = ""
    _write(tmp_path / "variants", "default", rows)
    assert sv.main(["--results", str(tmp_path)]) == 0
    assert f"| {SHIPPED} | 0 | 0 | 0 | 0 | 1 |" in (tmp_path / "safeguard_validation.md").read_text()
    assert sv.main(["--results", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "no variant result file" in err and "paper_experiments.py variants" in err


def test_reads_what_paper_experiments_writes() -> None:
    pe = benchmark_script("paper_experiments")
    from woodseg.data.benchmark.variants import get_variant

    runs = pe.variants()
    best = {"miou": 0.3, "precision": 0.4, "recall": 0.5, "f1": 0.45, "threshold": 0.2}
    sig = {"heldout_map": 0.8, "heldout_ap": {}, "peak_share": 0.3, "n_heldout": 10, "n_pairs": 12,
           "context_pc": 0.4, "n_context": 30, "ood_residual": 0.05, "n_ood": 20, "ood_suspects": ["x"]}
    rows = pe.per_run_rows(get_variant("default"), "tag", "abc", 0, runs, {r.key: {"train": best} for r in runs},
                           {r.key: sig for r in runs}, ["train"])
    assert set(sv.NEEDED) <= set(rows[0]) and set(sv.REFERENCES.values()) <= {r["key"] for r in rows}


def test_ood_residual_is_judged_on_wood_s_own_value(tmp_path: Path) -> None:
    """A list full of hidden positives: W-OoD below the control, peak share up, but its OoD residual high."""
    dirty = _seed("default-unreviewed", 0, (41, 89), (42, 90), (40.8, 87), peak=(28, 29, 32))
    clean = _seed("default", 0, (41, 89), (42, 90), (45, 88), peak=(28, 29, 33))
    dirty[2]["ood_residual"], clean[2]["ood_residual"] = 26.3, 5.0
    for rows in (dirty, clean):
        rows[0]["ood_residual"] = rows[1]["ood_residual"] = ""  # F_in and the control train no OoD term
    _write(tmp_path / "variants", "default-unreviewed", dirty)
    _write(tmp_path / "variants", "default", clean)
    assert sv.main(["--results", str(tmp_path)]) == 0
    md = (tmp_path / "safeguard_validation.md").read_text()
    shipped = sv.CANDIDATES[0].name
    assert "OoD residual of W-OoD > 10" in shipped  # the shipped rule: peak share or the residual
    assert f"| {shipped} | 1 | 0 | 0 | 1 | 0 |" in md
    assert "| OoD residual of W-OoD > 20 | 1 | 0 | 0 | 1 | 0 |" in md
    assert "| OoD residual of W-OoD > 5 | 1 | 0 | 0 | 1 | 0 |" in md  # 5.0 is not above 5
    assert "| CAM peak share drop vs F_in > 0 | 0 | 1 | 0 | 1 | 0 |" in md  # the peak share misses it
    assert "| 26.3 | yes |" in md
