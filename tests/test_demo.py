"""`woodseg demo` end to end at a tiny size: benchmark -> F_in -> mined OoD -> W-OoD -> seeds -> masks ->
segmenter -> report."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from woodseg.cli import app

TINY = [
    "demo.benchmark_scale=0.05", "demo.baseline_epochs=2", "demo.ood_threshold=0.0", "demo.ood_per_class=2",
    "demo.overlays=2", "demo.variants=[paper,official]", "demo.control=true",
    "train.epochs=1", "train.batch_size=8", "runtime.threads=1", "wood.K=4", "wood.ood_batch_size=4",
    "cam.scales=[1.0,0.5]", "model.channels_last=false",
    "irn.epochs=1", "irn.batch_size=8", "walk.exp_times=3", "segmenter.epochs=1", "segmenter.batch_size=4",
    "segmenter.channels_last=false", "predict.batch_size=4",
]


def test_demo_runs_end_to_end_and_resumes(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "-q", "--full", "--cache-dir", str(tmp_path / "cache"), f"out_dir={out}", *TINY]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "simulated reviewer" in result.output
    assert "Seed quality on split 'train'" in result.output and "CRF off" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["runs"]) == {"baseline (F_in)", "F_in + same schedule, no OoD", "W-OoD (paper)",
                                    "W-OoD (official)"}
    for run in summary["runs"].values():
        for split in ("train", "val"):
            row = run[split]
            assert 0 <= row["miou"] <= 1 and 0 <= row["precision"] <= 1
            assert row["protocol"]["benchmark"].startswith("spurious-context v")
            assert row["protocol"]["split"] == split
    # Table 2 row and the held-out segmentation for the baseline and the W-OoD runs (not the control)
    assert "From seeds to segmentation" in result.output and "Demo run time per step" in result.output
    assert set(summary["refined"]) == {"baseline (F_in)", "W-OoD (paper)", "W-OoD (official)"}
    for refined in summary["refined"].values():
        row = refined["table2"]
        assert row["split"] == "train"
        for key, what in (("seed", "seeds"), ("crf", "seed + CRF"), ("mask", "pseudo masks")):
            assert 0 <= row[key]["miou"] <= 1 and what in row[key]["protocol"], row[key]
        assert set(refined["segmentation"]) == {"val", "val-crf"}
        assert "split val" in refined["segmentation"]["val"]["protocol"]
        assert 0 <= refined["segmentation"]["val"]["miou"] <= 1
    val_ids = sorted(p.stem for p in (out / "baseline" / "predictions" / "val").glob("*.png"))
    assert val_ids and all((out / "baseline" / "masks" / f"{i}.png").exists() for i in val_ids)
    assert any(k.startswith("segmenter ") for k in summary["timings_s"])
    review = summary["review"]
    assert review["simulated"] is True
    kept = (out / "ood" / "ood_list.txt").read_text().split()
    assert len(kept) == review["total"]["kept"] > 0
    for c in review["classes"].values():
        assert c["kept"] <= 2 and c["reviewed"] == c["kept"] + c["rejected"]
    html = (out / "report.html").read_text()
    assert "W-OoD (paper)" in html and "simulated" in html.lower()
    assert (out / "wood-paper" / "classifier" / "centres.npz").exists()
    assert 'id="refinement"' in html and html.count('class="overlay mask-overlay"') == 2
    # a second run finds everything done and only re-reads it
    stamps = {p: p.stat().st_mtime_ns for p in (out / "wood-paper" / "classifier" / "last.pt",
                                                 out / "wood-paper" / "segmenter" / "last.pt")}
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((out / "summary.json").read_text())["refined"] == summary["refined"]
    # the safeguard of each W-OoD run against F_in and the control, in the summary and the report
    assert set(summary["safeguard"]) == {"W-OoD (paper)", "W-OoD (official)"}
    assert set(summary["safeguard"]["W-OoD (paper)"]["runs"]) == {"W-OoD", "F_in", "control"}
    assert "safeguard, W-OoD (paper)" in html
    # the control is judged, never refined: CAMs of the seed and held-out splits only
    control_seeds = {p.stem for p in (out / "control" / "seeds").glob("*.npz")}
    judged = {p.stem for p in (out / "wood-paper" / "predictions" / "val").glob("*.png")}
    assert judged <= control_seeds and len(control_seeds) < len(list((out / "wood-paper" / "seeds").glob("*.npz")))
    # demo.refine=false stops after the seeds and the safeguard
    seeds_only = CliRunner().invoke(app, [a for a in args if a != "--full"])  # the default
    assert seeds_only.exit_code == 0, seeds_only.output
    assert "From seeds to segmentation" not in seeds_only.output
    assert json.loads((out / "summary.json").read_text())["refined"] == {}
