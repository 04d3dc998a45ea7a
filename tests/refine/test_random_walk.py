import numpy as np
import pytest

from woodseg.refine.random_walk import (
    WALK_SETTINGS,
    WalkParams,
    direction_paths,
    propagate,
    propagate_dense,
    pseudo_mask,
    search_directions,
    transition_matrix,
    walk_labels,
)


def test_graph_sizes() -> None:
    assert len(search_directions(5)) == 34  # 69 lattice points strictly inside radius 5, minus self, halved
    assert len(search_directions(10)) == 152
    for (dy, dx), path in zip(search_directions(5), direction_paths(5), strict=True):
        rows = {tuple(p) for p in path}
        assert (0, 0) in rows and (dy, dx) in rows
    dirs = [tuple(int(v) for v in d) for d in search_directions(5)]
    path = {tuple(int(v) for v in p) for p in direction_paths(5)[dirs.index((0, 3))]}
    assert path == {(0, 0), (0, 1), (0, 2), (0, 3)}
    path = {tuple(int(v) for v in p) for p in direction_paths(5)[dirs.index((2, 2))]}
    assert path == {(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 1), (2, 2)}  # within distance 1 of the line


def test_transition_rows_sum_to_one_and_pairs_stay_inside() -> None:
    rng = np.random.default_rng(0)
    edge = rng.uniform(0, 1, (7, 9)).astype(np.float32)
    m = transition_matrix(edge, beta=10, radius=5)
    assert m.shape == (63, 63)
    np.testing.assert_allclose(np.asarray(m.sum(1)).ravel(), 1.0, rtol=1e-5)
    a = (m.toarray() > 0)
    np.testing.assert_array_equal(a, a.T)  # symmetric support: every pair both ways
    # a corner pixel reaches only the in-map pixels closer than 5
    ys, xs = np.divmod(np.flatnonzero(a[0]), 9)
    assert ((ys**2 + xs**2) < 25).all() and len(ys) == sum(1 for y in range(7) for x in range(9) if y * y + x * x < 25)


@pytest.mark.parametrize("shape, exp_times, power", [((9, 11), 8, 1.0), ((6, 13), 3, 1.5), ((1, 7), 8, 1.0)])
def test_sparse_equals_dense_reference(shape: tuple[int, int], exp_times: int, power: float) -> None:
    rng = np.random.default_rng(1)
    edge = rng.uniform(0, 1, shape).astype(np.float32) ** 3
    seeds = rng.uniform(0, 1, (3, *shape)).astype(np.float32)
    params = WalkParams(exp_times=exp_times, seed_power=power)
    sparse = propagate(seeds, edge, params)
    dense = propagate_dense(seeds, edge, params)
    np.testing.assert_allclose(sparse, dense, rtol=2e-3, atol=1e-6 * dense.max())
    keys = np.array([0, 4, 9])
    size = (shape[0] * 4 - 3, shape[1] * 4 - 1)
    np.testing.assert_array_equal(pseudo_mask(seeds, keys, edge, size, params),
                                  pseudo_mask(seeds, keys, edge, size, params, dense=True))


def test_seed_spreads_inside_its_region_and_not_across_the_edge() -> None:
    h, w = 20, 24
    edge = np.zeros((h, w), np.float32)
    edge[:, 12] = 1.0  # a closed wall from top to bottom
    seeds = np.zeros((1, h, w), np.float32)
    seeds[0, 4, 3] = 1.0
    walked = propagate(seeds, edge, WALK_SETTINGS["irn"])[0]
    left, right = walked[:, :12], walked[:, 13:]
    assert (right == 0).all() and (walked[:, 12] == 0).all()
    assert left.min() > 0.5 * left.max()  # spread over the whole region, far from the seed too
    labels = walk_labels(walked[None], np.array([6]), (h * 4, w * 4), bg_threshold=0.25)
    assert (labels[:, : 4 * 12 - 4] == 7).all()
    assert (labels[:, 4 * 13 + 4:] == 0).all()


def test_walk_labels_background_plane_and_crop() -> None:
    walked = np.zeros((2, 3, 4), np.float32)
    walked[0, 0, 0] = 2.0
    walked[1, 2, 3] = 1.0  # half the global max -> above a 0.25 background, below a 0.6 one
    lab = walk_labels(walked, np.array([1, 2]), (10, 15), bg_threshold=0.25)
    assert lab.shape == (10, 15) and lab[0, 0] == 2 and lab[9, 14] == 3 and lab[5, 6] == 0
    assert walk_labels(walked, np.array([1, 2]), (10, 15), bg_threshold=0.6)[9, 14] == 0
    assert not walk_labels(np.zeros((0, 3, 4)), np.zeros(0, int), (10, 15), 0.25).any()
    with pytest.raises(ValueError, match="stride-4"):
        walk_labels(walked, np.array([1, 2]), (20, 15), 0.25)


def test_named_settings() -> None:
    assert WALK_SETTINGS["wood"] == WalkParams(beta=10, exp_times=8, radius=5, seed_power=1.5, bg_threshold=0.22)
    assert WALK_SETTINGS["irn"].seed_power == 1.0 and WALK_SETTINGS["irn"].bg_threshold == 0.25
