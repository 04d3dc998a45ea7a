"""Fully connected (dense) CRF over an RGB image, behind one small interface (pydensecrf2).

Two unaries are used in the pipeline:

* **label unaries** for IR labels and seed+CRF: a hard label map where each label is trusted with
  probability ``gt_prob`` (IRN ``misc/imutils.py`` ``crf_inference_label``: gt_prob 0.7, Gaussian sxy 3
  compat 3, bilateral sxy 50 srgb 5 compat 10, 10 iterations);
* **softmax unaries** for segmentation predictions (deeplab-pytorch ``libs/utils/crf.py``: Gaussian sxy 1
  compat 3, bilateral sxy 67 srgb 3 compat 4, 10 iterations).

Seed + CRF (the "+CRF" column of the paper's Table 2) has no public protocol. Ours: the seed's label map at
the evaluation threshold (``seed_label_map``, background where no class score exceeds it) is refined with
the label-unary CRF above, with one label per class of the image plus background. This is the same CRF
that makes IR labels, so the column measures what the CRF adds to the seed that IRN will be trained from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from woodseg.errors import ConfigError


@dataclass(frozen=True)
class CrfParams:
    """Pairwise kernels and iteration count of a dense CRF."""

    iterations: int
    gauss_sxy: float
    gauss_compat: float
    bi_sxy: float
    bi_srgb: float
    bi_compat: float


# IRN misc/imutils.py crf_inference_label.
LABEL_CRF = CrfParams(iterations=10, gauss_sxy=3, gauss_compat=3, bi_sxy=50, bi_srgb=5, bi_compat=10)
# deeplab-pytorch configs/voc12.yaml (CRF section).
SOFTMAX_CRF = CrfParams(iterations=10, gauss_sxy=1, gauss_compat=3, bi_sxy=67, bi_srgb=3, bi_compat=4)


def _densecrf() -> Any:
    """The pydensecrf module, or a clear error naming the extra that provides it."""
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as exc:
        raise ConfigError(
            f"the dense CRF library is not installed ({exc})",
            fix="pip install 'woodseg[crf]' (it builds pydensecrf2==1.1 from source, ~1 minute, needs gcc)",
        ) from exc
    return dcrf


def _check_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != shape:
        raise ValueError(f"image must be HxWx3 matching the map {shape}, got {image.shape}")
    return np.require(image, np.uint8, ["C", "W"])  # pydensecrf refuses read-only buffers (PIL arrays)


def _infer(image: np.ndarray, unary: np.ndarray, n_labels: int, params: CrfParams) -> np.ndarray:
    """Mean-field inference; returns Q as float32 [n_labels, H, W]."""
    dcrf = _densecrf()
    h, w = image.shape[:2]
    d = dcrf.DenseCRF2D(w, h, n_labels)
    d.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    d.addPairwiseGaussian(sxy=params.gauss_sxy, compat=params.gauss_compat)
    d.addPairwiseBilateral(sxy=params.bi_sxy, srgb=params.bi_srgb, rgbim=image, compat=params.bi_compat)
    q = d.inference(params.iterations)
    return np.asarray(q, dtype=np.float32).reshape(n_labels, h, w)


def crf_labels(image: np.ndarray, labels: np.ndarray, n_labels: int, params: CrfParams = LABEL_CRF,
               gt_prob: float = 0.7) -> np.ndarray:
    """Refine a hard label map (values 0..n_labels-1) with label unaries; returns int64 HxW labels.

    Every pixel's label is "sure" (zero_unsure False in pydensecrf's ``unary_from_labels``): the label
    gets -log(gt_prob), every other label -log((1 - gt_prob) / (n_labels - 1)).
    """
    image = _check_image(image, labels.shape)
    if labels.min() < 0 or labels.max() >= n_labels:
        raise ValueError(f"labels must lie in 0..{n_labels - 1}, got {labels.min()}..{labels.max()}")
    if n_labels == 1:
        return np.zeros(labels.shape, dtype=np.int64)
    u_other = -np.log((1.0 - gt_prob) / (n_labels - 1))
    unary = np.full((n_labels, labels.size), u_other, dtype=np.float32)
    unary[labels.reshape(-1), np.arange(labels.size)] = -np.log(gt_prob)
    return _infer(image, unary, n_labels, params).argmax(0).astype(np.int64)


def crf_probs(image: np.ndarray, probs: np.ndarray, params: CrfParams = SOFTMAX_CRF) -> np.ndarray:
    """Refine per-pixel class probabilities [C, H, W] (softmax output); returns the CRF marginals [C, H, W]."""
    image = _check_image(image, probs.shape[1:])
    unary = -np.log(np.clip(probs, 1e-5, None)).reshape(probs.shape[0], -1)
    return _infer(image, unary, probs.shape[0], params)


def seed_crf_labels(image: np.ndarray, high_res: np.ndarray, keys: np.ndarray, threshold: float,
                    params: CrfParams = LABEL_CRF) -> np.ndarray:
    """Seed + CRF (module docstring): VOC labels HxW uint8 (0 background, key + 1 for a class)."""
    from woodseg.evaluate.seeds import seed_label_map

    labels = seed_label_map(high_res, keys, threshold)
    if len(keys) == 0:
        return labels
    lut = np.zeros(256, dtype=np.int64)  # VOC label -> compact index 0..len(keys)
    lut[np.asarray(keys, dtype=np.int64) + 1] = np.arange(1, len(keys) + 1)
    compact = crf_labels(image, lut[labels], len(keys) + 1, params)
    voc = np.concatenate([[0], np.asarray(keys, dtype=np.int64) + 1])
    return voc[compact].astype(np.uint8)


__all__: Sequence[str] = ("CrfParams", "LABEL_CRF", "SOFTMAX_CRF", "crf_labels", "crf_probs",
                          "seed_crf_labels")
