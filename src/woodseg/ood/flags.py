"""Evidence that a high-scoring candidate is a hidden positive, to spend less review effort on it.

The paper's review cost is n/(1-r): every candidate that really shows the class is looked at and thrown
away. Two cheap signals from the classifier separate likely true positives from hard OoDs:

- **CAM compactness**: an object gives one blob holding most of the class activation; a spurious
  background cue (rail for train, water for boat) spreads over large or scattered regions. The score is
  the share of activation mass in the largest connected half-max region times the fraction of the map
  that region leaves free, in [0, 1]; it comes from the same forward pass as p(c), at no extra cost.
- **Augmentation stability**: the minimum of p(c) over the image, its mirror and two rescales. A real
  object keeps the class score up under these; a weak texture cue tends to fall below 0.5.

Both are heuristics: a flag threshold turns them into a ``likely_positive`` bit that the review order
uses (:mod:`woodseg.ood.ordering`). Measure them before trusting them (docs/ood-collection.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from woodseg.data.transforms import normalize, rescale
from woodseg.runtime.batching import is_channels_last, to_batch

FLAG_NAMES = ("compactness", "stability")
STABILITY_SCALES = (0.75, 1.25)
_EIGHT = np.ones((3, 3), dtype=bool)


def cam_compactness(cam: np.ndarray, region_threshold: float = 0.5) -> float:
    """Object-likeness of one class's CAM (H x W, any real values): 0 = diffuse/absent, 1 = one tight blob.

    ``a = ReLU(cam) / max``; the region is ``a >= region_threshold`` and covers ``f`` of the map; its
    largest 8-connected component holds share ``s`` of the region's activation mass. The score is
    ``s * (1 - f)``: about 0.9 for one small blob, 0.4 for two equal ones, near 0 for activation everywhere.
    """
    a = np.maximum(np.asarray(cam, dtype=np.float64), 0.0)
    if a.ndim != 2:
        raise ValueError(f"cam_compactness expects a 2-D map, got shape {a.shape}")
    peak = a.max() if a.size else 0.0
    if not np.isfinite(peak) or peak <= 0:
        return 0.0
    a = a / peak
    labels, n = ndimage.label(a >= region_threshold, structure=_EIGHT)
    if n == 0:
        return 0.0
    masses = np.asarray(ndimage.sum(a, labels, index=np.arange(1, n + 1)), dtype=np.float64)
    share = float(masses.max() / masses.sum())
    area = float((labels > 0).sum() / a.size)
    return share * (1.0 - area)


def compactness_from_cams(cams: np.ndarray, region_threshold: float = 0.5) -> np.ndarray:
    """[B, C, h, w] raw CAMs -> [B, C] compactness scores."""
    b, c = cams.shape[:2]
    out = np.empty((b, c), dtype=np.float32)
    for i in range(b):
        for k in range(c):
            out[i, k] = cam_compactness(cams[i, k], region_threshold)
    return out


@torch.no_grad()
def stability_scores(model: torch.nn.Module, image: np.ndarray, num_classes: int, *,
                     device: str | torch.device = "cpu", scales: Sequence[float] = STABILITY_SCALES,
                     base_probs: np.ndarray | None = None) -> np.ndarray:
    """min over {original, mirror, rescales} of p(c) for one resized uint8 image -> [C].

    ``base_probs`` (p(c) of the unaugmented image, when already known) saves one forward pass.
    """
    views = [normalize(image)[:, ::-1]] + [normalize(rescale(image, s)) for s in scales]
    if base_probs is None:
        views.insert(0, normalize(image))
    probs = [] if base_probs is None else [np.asarray(base_probs, dtype=np.float32)[:num_classes]]
    channels_last = is_channels_last(model)
    for v in views:
        logits, _ = model(to_batch([v], device, channels_last))
        probs.append(torch.sigmoid(logits[0, :num_classes].float()).cpu().numpy())
    return np.min(np.stack(probs), axis=0).astype(np.float32)


def likely_positive(flag_score: float | np.ndarray, threshold: float = 0.5) -> bool | np.ndarray:
    """The flag bit: evidence at or above ``threshold`` (NaN, i.e. not computed, is never flagged)."""
    s = np.asarray(flag_score, dtype=np.float64)
    out = np.nan_to_num(s, nan=-np.inf) >= threshold
    return bool(out) if out.ndim == 0 else out

