"""Segmentation metrics from a confusion matrix (rows = ground truth, columns = prediction).

As the IRN/W-OoD evaluation does (IRN `step/eval_cam.py`, chainercv's `calc_semantic_segmentation_confusion`): pixels whose ground truth is 255 (ignore) are left
out; IoU_k = N_kk / (row_k + col_k - N_kk); mIoU is the mean over classes present in ground truth or
prediction (NaN-mean); precision_k = N_kk / col_k and recall_k = N_kk / row_k, both including background,
averaged plainly over classes; F1 = 2PR/(P+R) of those *mean* P and R (how the paper's Table 1 is made).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def confusion(gt: np.ndarray, pred: np.ndarray, num_labels: int, ignore: int = 255) -> np.ndarray:
    """[num_labels, num_labels] int64 confusion over pixels with gt != ignore."""
    gt = gt.reshape(-1).astype(np.int64)
    pred = pred.reshape(-1).astype(np.int64)
    keep = gt != ignore
    gt, pred = gt[keep], pred[keep]
    if gt.size and (gt.max() >= num_labels or pred.max() >= num_labels or gt.min() < 0 or pred.min() < 0):
        raise ValueError(f"labels outside 0..{num_labels - 1} (gt max {gt.max()}, pred max {pred.max()})")
    return np.bincount(gt * num_labels + pred, minlength=num_labels**2).reshape(num_labels, num_labels)


@dataclass
class Scores:
    iou: np.ndarray  # per label, NaN where the label never occurs in gt or prediction
    precision: np.ndarray
    recall: np.ndarray

    @property
    def miou(self) -> float:
        return float(np.nanmean(self.iou))

    @property
    def mean_precision(self) -> float:
        return float(np.nanmean(self.precision))

    @property
    def mean_recall(self) -> float:
        return float(np.nanmean(self.recall))

    @property
    def f1(self) -> float:
        p, r = self.mean_precision, self.mean_recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    def row(self) -> dict[str, float]:
        return {"miou": self.miou, "precision": self.mean_precision, "recall": self.mean_recall, "f1": self.f1}


def scores(conf: np.ndarray) -> Scores:
    conf = conf.astype(np.float64)
    tp = np.diag(conf)
    rows, cols = conf.sum(1), conf.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        union = rows + cols - tp
        iou = np.where(union > 0, tp / union, np.nan)
        precision = np.where(cols > 0, tp / cols, np.where(rows > 0, 0.0, np.nan))
        recall = np.where(rows > 0, tp / rows, np.where(cols > 0, 0.0, np.nan))
    return Scores(iou, precision, recall)
