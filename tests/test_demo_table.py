"""benchmarks/demo_table.py: the demo's timing lines name what was timed and what each command ran."""

from __future__ import annotations

from helpers import benchmark_script

dt = benchmark_script("demo_table")

STEPS = {"benchmark": 0.1, "train baseline": 90.0, "seeds baseline": 80.0, "safeguard": 3.0, "report": 9.0}
FULL = {**{k: 0.0 for k in STEPS}, "ir_labels baseline": 50.0, "segmenter baseline": 120.0, "report": 10.0}


def test_timed_commands_report_wall_and_their_own_steps() -> None:
    lines = dt.timing_lines(FULL, {"woodseg demo": (400.0, STEPS), "woodseg demo --full": (185.0, FULL)})
    assert lines[0].startswith("Wall time of `woodseg demo`: 6.7 min (400 s")
    assert "train baseline 90 s" in lines[0] and "ir_labels" not in lines[0]
    assert lines[1].startswith("Wall time of `woodseg demo --full`: 3.1 min (185 s")
    # steps the second command reused (0 s) are not listed as if they ran
    assert "train baseline" not in lines[1] and "segmenter baseline 120 s" in lines[1]
    assert "reused" in lines[2]


def test_untimed_summary_splits_the_seeds_part_from_refinement() -> None:
    steps = {**STEPS, "ir_labels baseline": 50.0, "segmenter baseline": 120.0}
    lines = dt.timing_lines(steps, {})
    assert lines[0].startswith("Time in the demo's steps: 5.9 min (352 s")
    assert lines[1].endswith("2.9 min (173 s).")  # all but the refinement steps and the report
    assert dt.timing_lines(STEPS, {})[1].startswith("Steps: ")  # a seeds-only run has no split line
