"""`woodseg demo` end to end at a tiny size: benchmark -> F_in -> mined OoD -> W-OoD -> seeds -> report."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from woodseg.cli import app

TINY = [
    "demo.benchmark_scale=0.05", "demo.baseline_epochs=2", "demo.ood_threshold=0.0", "demo.ood_per_class=2",
    "demo.overlays=2", "demo.variants=[paper,official]", "demo.control=true",
    "train.epochs=1", "train.batch_size=8", "runtime.threads=1", "wood.K=4", "wood.ood_batch_size=4",
    "cam.scales=[1.0,0.5]", "model.channels_last=false",
]


def test_demo_runs_end_to_end_and_resumes(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "-q", "--cache-dir", str(tmp_path / "cache"), f"out_dir={out}", *TINY]
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
    review = summary["review"]
    assert review["simulated"] is True
    kept = (out / "ood" / "ood_list.txt").read_text().split()
    assert len(kept) == review["total"]["kept"] > 0
    for c in review["classes"].values():
        assert c["kept"] <= 2 and c["reviewed"] == c["kept"] + c["rejected"]
    html = (out / "report.html").read_text()
    assert "W-OoD (paper)" in html and "simulated" in html.lower()
    assert (out / "wood-paper" / "classifier" / "centres.npz").exists()
    # a second run finds everything done and only re-reads it
    stamp = (out / "wood-paper" / "classifier" / "last.pt").stat().st_mtime_ns
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert (out / "wood-paper" / "classifier" / "last.pt").stat().st_mtime_ns == stamp
