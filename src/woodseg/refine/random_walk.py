"""Random walk of seeds over IRN's boundary map -> pseudo masks, in memory linear in the pixel count.

IRN (Ahn et al., CVPR 2019; ``misc/indexing.py`` ``propagate_to_edge``,
``step/make_sem_seg_labels.py``): on the stride-4 map, every pixel is joined to the pixels within
``radius`` (5); the affinity of a pair is 1 - the largest boundary value on the straight path between
them. The transition matrix is affinity**beta with ones on the diagonal, column-normalised, raised to
the power 2**exp_times; the seeds, multiplied by (1 - boundary), are propagated by it. The walked maps are
upsampled x4 (bilinear), cropped to the image, divided by their global maximum, and a constant background
plane is put in front before the argmax.

IRN squares a dense N x N matrix exp_times times (N = pixels of the stride-4 map): ~0.6 GiB and ~26 TFLOP
for a 500x375 image, 16 GiB per matrix at 1024x1024. Squaring a sparse matrix fills it in, so
:func:`propagate` instead applies the sparse one-step transition 2**exp_times times to the seed maps (the
same product, associated differently): memory O(N * neighbours), time O(2**exp_times * N * neighbours).
:func:`propagate_dense` is the dense squaring, kept as the reference the tests and the benchmark compare to.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class WalkParams:
    """Random-walk settings (IRN's defaults: beta 10, exp_times 8, radius 5, power 1, background 0.25)."""

    beta: float = 10.0
    exp_times: int = 8
    radius: int = 5
    seed_power: float = 1.0
    bg_threshold: float = 0.25


# Named settings: IRN (run_sample.py defaults); AdvCAM and W-OoD's pseudo-GT script raise the seeds to 1.5,
# and W-OoD lowers the background plane to 0.22.
WALK_SETTINGS: dict[str, WalkParams] = {
    "irn": WalkParams(seed_power=1.0, bg_threshold=0.25),
    "advcam": WalkParams(seed_power=1.5, bg_threshold=0.25),
    "wood": WalkParams(seed_power=1.5, bg_threshold=0.22),
}


# ---- the graph ---------------------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def search_directions(radius: int) -> np.ndarray:
    """Offsets (dy, dx) to the neighbours within ``radius`` in one half-plane: [D, 2] int.

    Every unordered pair of pixels closer than ``radius`` (squared distance < radius**2) appears once:
    (0, 1..radius-1), then dy = 1..radius-1 with any dx. Radius 5 gives 34 directions, radius 10 gives 152.
    """
    dirs = [(0, dx) for dx in range(1, radius)]
    dirs += [(dy, dx) for dy in range(1, radius) for dx in range(-radius + 1, radius) if dx * dx + dy * dy < radius**2]
    return np.asarray(dirs, dtype=np.int64)


@lru_cache(maxsize=8)
def direction_paths(radius: int) -> tuple[np.ndarray, ...]:
    """For each direction, the offsets of the pixels on the straight path from (0, 0) to it, both ends included.

    A pixel of the bounding box is on the path when its squared distance to the line is below 1.
    """
    paths = []
    for dy, dx in search_directions(radius):
        length_sq = dy * dy + dx * dx
        ys, xs = np.mgrid[min(0, dy):max(0, dy) + 1, min(0, dx):max(0, dx) + 1]
        on = (dy * xs - dx * ys) ** 2 < length_sq
        paths.append(np.stack([ys[on], xs[on]], 1))
    return tuple(paths)


def pair_affinities(edge: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(src, dst, affinity) of every pixel pair closer than ``radius`` inside the h x w map, flat indices.

    The edge map is padded with 1.0 on the left, right and bottom (IRN ``propagate_to_edge``) so every path
    can be read by slicing; pairs whose far end leaves the map are dropped.
    """
    h, w = edge.shape
    r = radius
    padded = np.pad(edge.astype(np.float32), ((0, r), (r, r)), constant_values=1.0)
    flat = np.arange(h * w).reshape(h, w)
    srcs, dsts, affs = [], [], []
    for (dy, dx), path in zip(search_directions(r), direction_paths(r), strict=True):
        path_max = np.zeros((h, w), dtype=np.float32)
        for py, px in path:
            np.maximum(path_max, padded[py:py + h, r + px:r + px + w], out=path_max)
        y0, y1 = 0, h - dy
        x0, x1 = max(0, -dx), min(w, w - dx)
        if y1 <= y0 or x1 <= x0:
            continue
        srcs.append(flat[y0:y1, x0:x1].ravel())
        dsts.append(flat[y0 + dy:y1 + dy, x0 + dx:x1 + dx].ravel())
        affs.append(1.0 - path_max[y0:y1, x0:x1].ravel())
    if not srcs:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    return np.concatenate(srcs), np.concatenate(dsts), np.concatenate(affs)


def transition_matrix(edge: np.ndarray, beta: float, radius: int) -> sp.csr_matrix:
    """One random-walk step as a sparse N x N matrix M = D^-1 A (A = affinity**beta, symmetric, unit diagonal).

    ``seeds @ T`` with IRN's column-normalised T equals ``(M @ seeds.T).T``: each step replaces a pixel's
    value by the affinity-weighted mean over its neighbourhood.
    """
    n = edge.size
    src, dst, aff = pair_affinities(edge, radius)
    a = np.power(np.clip(aff, 0.0, None), beta, dtype=np.float32)
    rows = np.concatenate([src, dst, np.arange(n)])
    cols = np.concatenate([dst, src, np.arange(n)])
    vals = np.concatenate([a, a, np.ones(n, dtype=np.float32)])
    mat = sp.csr_matrix((vals, (rows, cols)), shape=(n, n), dtype=np.float32)
    degree = np.asarray(mat.sum(1), dtype=np.float32).ravel()
    return sp.csr_matrix(sp.diags(1.0 / degree) @ mat, dtype=np.float32)


# ---- propagation -------------------------------------------------------------------------------------------

def _masked_seeds(seeds: np.ndarray, edge: np.ndarray, power: float) -> np.ndarray:
    if seeds.ndim != 3 or seeds.shape[1:] != edge.shape:
        raise ValueError(f"seeds must be [C, h, w] on the edge map's grid {edge.shape}, got {seeds.shape}")
    return (np.power(np.clip(seeds, 0.0, None), power) * (1.0 - edge)[None]).astype(np.float32)


def propagate(seeds: np.ndarray, edge: np.ndarray, params: WalkParams = WalkParams()) -> np.ndarray:
    """Walked maps [C, h, w] of stride-4 seeds [C, h, w] over the boundary map ``edge`` [h, w] (values in [0, 1]).

    2**exp_times sparse steps; peak memory ~ (neighbours + 2C) floats per pixel.
    """
    x = _masked_seeds(seeds, edge, params.seed_power)
    c, h, w = x.shape
    if c == 0:
        return x
    mat = transition_matrix(edge, params.beta, params.radius)
    v = np.ascontiguousarray(x.reshape(c, h * w).T)
    for _ in range(2**params.exp_times):
        v = mat @ v
    return np.ascontiguousarray(v.T).reshape(c, h, w)


def propagate_dense(seeds: np.ndarray, edge: np.ndarray, params: WalkParams = WalkParams(),
                    device: str | torch.device = "cpu") -> np.ndarray:
    """Reference: IRN's dense construction (padded grid, crop) and exp_times squarings of the N x N matrix.

    Memory ~3 N^2 floats (N = h*w): use only on small maps.
    """
    x = _masked_seeds(seeds, edge, params.seed_power)
    c, h, w = x.shape
    r = params.radius
    hp, wp = h + r, w + 2 * r
    padded = np.pad(edge.astype(np.float32), ((0, r), (r, r)), constant_values=1.0)
    # Affinity from every pixel of the original region to its forward neighbours, on the padded grid.
    ys, xs = np.mgrid[0:h, r:r + w]
    src = (ys * wp + xs).ravel()
    dense = torch.zeros(hp * wp, hp * wp, dtype=torch.float32, device=device)
    for (dy, dx), path in zip(search_directions(r), direction_paths(r), strict=True):
        path_max = np.max([padded[ys + py, xs + px] for py, px in path], axis=0).ravel()
        dst = ((ys + dy) * wp + xs + dx).ravel()
        aff = torch.as_tensor(1.0 - path_max, device=device)
        s, d = torch.as_tensor(src, device=device), torch.as_tensor(dst, device=device)
        dense[s, d] = aff
        dense[d, s] = aff
    dense.fill_diagonal_(1.0)
    dense = dense.view(hp, wp, hp, wp)[:h, r:r + w, :h, r:r + w].reshape(h * w, h * w)
    trans = dense.pow(params.beta)
    del dense
    trans = trans / trans.sum(0, keepdim=True)
    for _ in range(params.exp_times):
        trans = trans @ trans
    out = torch.as_tensor(x.reshape(c, h * w), device=device) @ trans
    return out.cpu().numpy().reshape(c, h, w)


# ---- labels ------------------------------------------------------------------------------------------------

def walk_labels(walked: np.ndarray, keys: np.ndarray, size: tuple[int, int], bg_threshold: float) -> np.ndarray:
    """VOC label map HxW uint8 from stride-4 walked maps: x4 bilinear, crop, / global max, background plane, argmax."""
    h, w = size
    h4, w4 = walked.shape[1:]
    if not (4 * h4 >= h > 4 * (h4 - 1) and 4 * w4 >= w > 4 * (w4 - 1)):
        raise ValueError(f"walked maps {walked.shape[1:]} are not the stride-4 maps of a {size} image")
    if walked.shape[0] == 0:
        return np.zeros((h, w), dtype=np.uint8)
    up = F.interpolate(torch.as_tensor(walked, dtype=torch.float32)[None], scale_factor=4, mode="bilinear",
                       align_corners=False)[0, :, :h, :w]
    up = up / up.max().clamp_min(1e-12)
    planes = torch.cat([torch.full((1, h, w), bg_threshold), up])
    voc = np.concatenate([[0], np.asarray(keys, dtype=np.int64) + 1])
    return voc[planes.argmax(0).numpy()].astype(np.uint8)


def pseudo_mask(cam: np.ndarray, keys: np.ndarray, edge: np.ndarray, size: tuple[int, int],
                params: WalkParams = WalkParams(), dense: bool = False) -> np.ndarray:
    """Pseudo mask HxW uint8 of one image from its stride-4 seed ``cam`` [n, h4, w4] and boundary map [h4, w4]."""
    walked = (propagate_dense if dense else propagate)(cam, edge, params)
    return walk_labels(walked, keys, size, params.bg_threshold)
