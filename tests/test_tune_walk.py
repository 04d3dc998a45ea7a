"""benchmarks/tune_walk.py: the ground-truth boundary map that measures the random walk's ceiling."""

from __future__ import annotations

import json

import numpy as np

from helpers import benchmark_script
from woodseg.refine.random_walk import WalkParams, propagate

tw = benchmark_script("tune_walk")


def square_mask(size: int = 32, lo: int = 8, hi: int = 24) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[lo:hi, lo:hi] = 1
    return mask


def test_truth_edges_mark_one_cell_where_the_label_changes() -> None:
    edge = tw.truth_edges(square_mask(), (8, 8))
    # cell centres at 2, 6, ..., 30: the square holds cells 2..5
    inside = np.zeros((8, 8), dtype=bool)
    inside[2:6, 2:6] = True
    expected = np.zeros((8, 8), dtype=np.float32)
    expected[:-1] = np.maximum(expected[:-1], inside[:-1] != inside[1:])
    expected[:, :-1] = np.maximum(expected[:, :-1], inside[:, :-1] != inside[:, 1:])
    np.testing.assert_array_equal(edge, expected)
    # the cells just outside the top and left sides (4 + 4), the last row and column inside (4 + 4 - 1 shared)
    assert edge.sum() == 15
    assert tw.truth_edges(np.zeros((32, 32), dtype=np.uint8), (8, 8)).sum() == 0


def test_truth_edges_pad_a_grid_larger_than_the_mask() -> None:
    # a 30x30 image has an 8x8 stride-4 grid, one more cell than it has cell centres (2, 6, ..., 26)
    edge = tw.truth_edges(square_mask(30, 8, 30), (8, 8))
    assert edge.shape == (8, 8)
    # the padded last row and column copy their neighbours: no boundary between them
    np.testing.assert_array_equal(edge[7], edge[6])
    np.testing.assert_array_equal(edge[:, 7], edge[:, 6])
    assert edge[6, 1] == 1 and edge[6].sum() == 1


def test_the_walk_over_truth_edges_keeps_a_seed_inside_its_region() -> None:
    mask = square_mask()
    edge = tw.truth_edges(mask, (8, 8))
    seed = np.zeros((1, 8, 8), dtype=np.float32)
    seed[0, 3, 3] = 1.0  # an interior cell of the square
    walked = propagate(seed, edge, WalkParams(exp_times=5))[0]
    outside = np.ones((8, 8), dtype=bool)
    outside[2:6, 2:6] = False
    assert walked[outside].sum() < 1e-6 * walked.sum()
    assert (walked[3:5, 3:5] > 0).all()  # spread over the region's interior


def test_reference_lines_quote_the_runs_own_results(tmp_path) -> None:
    (tmp_path / "eval").mkdir()
    best = {"miou": 0.413, "per_class_iou": {"background": 0.828, "aeroplane": 0.153}}
    (tmp_path / "eval" / "seeds.json").write_text(json.dumps({"train": {"best": best}}))
    (tmp_path / "eval" / "masks.json").write_text(json.dumps({"train": {"scores": {"miou": 0.368}}}))
    line = tw.reference_lines(tmp_path, "train")[1]
    assert line.startswith("The run's own results on that split: seed 41.3, mask 36.8.")  # no seed + CRF file
    assert line.endswith("Seed per-class IoU: background 82.8, aeroplane 15.3.")
    assert tw.reference_lines(tmp_path, "val") == []
