"""Cluster centres for the distance loss: class means P^in and OoD centres P^ood (paper Sec. 3.2).

As the official code does (naver-ai/w-ood ``step/train_cam_clustering.py``, ``get_sample_estimator``): features z = GAP(last stage) from the starting model,
in-distribution images at native resolution, OoD images at a fixed long side; class centre mu_c = mean z
over the images labelled c (a multi-label image counts for each of its classes); OoD centres by Lloyd
K-means, initialised with the first K OoD features in list order (or k-means++). Table 4's alternative
groups OoD images by the class the model predicts for them instead.

Centres are saved as ``centres.npz`` (no pickle) with their provenance, so a run can be audited and
resumed without recomputing them.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from woodseg.config import WoodConfig
from woodseg.errors import ConfigError, DataError
from woodseg.fsutil import atomic_save

log = logging.getLogger(__name__)


@dataclass
class Centres:
    """Class centres [C, D] (rows of classes without images are zero and marked invalid), OoD centres [K, D]."""

    class_centres: np.ndarray
    class_valid: np.ndarray
    ood_centres: np.ndarray
    ood_assign: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)

    def tensors(self, device: str | torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (torch.as_tensor(self.class_centres, device=device),
                torch.as_tensor(self.class_valid, device=device),
                torch.as_tensor(self.ood_centres, device=device))

    def save(self, path: str | Path) -> None:
        atomic_save(path, lambda buf: np.savez(
            buf, class_centres=self.class_centres, class_valid=self.class_valid, ood_centres=self.ood_centres,
            ood_assign=self.ood_assign, provenance=np.array(json.dumps(self.provenance, default=str))))

    @classmethod
    def load(cls, path: str | Path) -> Centres:
        with np.load(path, allow_pickle=False) as f:
            return cls(f["class_centres"], f["class_valid"], f["ood_centres"], f["ood_assign"],
                       json.loads(str(f["provenance"])))


def class_means(features: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Mean feature per class over the images that carry it; classes with no image are marked invalid."""
    ok = ~np.isnan(features).any(1)
    features, labels = features[ok], labels[ok]
    counts = labels.sum(0)
    centres = np.zeros((labels.shape[1], features.shape[1]), dtype=np.float32)
    valid = counts > 0
    for c in np.flatnonzero(valid):
        centres[c] = features[labels[:, c] > 0.5].mean(0)
    if not valid.all():
        missing = [class_names[c] for c in np.flatnonzero(~valid)]
        log.warning("classes with no training image get no centre and no pull term: %s", ", ".join(missing))
    return centres, valid


def kmeans_centres(features: np.ndarray, k: int, *, init: str = "first", iters: int = 10, seed: int = 0,
                   source: str = "the OoD set") -> tuple[np.ndarray, np.ndarray]:
    """K-means (Lloyd, Euclidean) on OoD features with scikit-learn; returns (centres [K, D], assignment [N]).

    scikit-learn relocates empty clusters, so no centre is ever NaN (the official code gives an empty cluster a zero centre instead).
    """
    ok = ~np.isnan(features).any(1)
    x = features[ok].astype(np.float64)
    n = x.shape[0]
    if n == 0:
        raise DataError("the OoD set is empty: no features to cluster", path=source,
                        fix="add OoD images, or train without OoD (wood.variant=none)")
    if k > n:
        raise ConfigError(f"wood.K={k} OoD clusters but {source} has only {n} usable images",
                          fix=f"set wood.K to at most {n} (e.g. wood.K={max(1, n // 5)}) or add OoD images")
    if init == "first":
        init_arr: np.ndarray | str = x[:k]
        if len(np.unique(init_arr, axis=0)) < k:
            log.warning("the first %d OoD features hold duplicates; initialising K-means with k-means++", k)
            init_arr = "k-means++"
    else:
        init_arr = "k-means++"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=k, init=init_arr, n_init=1, max_iter=iters, random_state=seed, algorithm="lloyd")
        km.fit(x)
    assign = np.full(features.shape[0], -1, dtype=np.int64)
    assign[ok] = km.labels_
    return km.cluster_centers_.astype(np.float32), assign


def predicted_class_centres(features: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Table 4's alternative: one OoD cluster per class the model (wrongly) predicts; empty ones dropped."""
    ok = ~np.isnan(features).any(1)
    pred = np.full(features.shape[0], -1, dtype=np.int64)
    pred[ok] = logits[ok].argmax(1)
    used = sorted(set(pred[ok].tolist()))
    if not used:
        raise DataError("no OoD features to group by predicted class", fix="check the OoD list")
    centres = np.stack([features[pred == c].mean(0) for c in used]).astype(np.float32)
    remap = {c: i for i, c in enumerate(used)}
    assign = np.array([remap.get(int(p), -1) for p in pred], dtype=np.int64)
    return centres, assign


def compute_centres(model: torch.nn.Module, in_paths: list[Path], in_labels: np.ndarray, ood_paths: list[Path],
                    cfg: WoodConfig, class_names: tuple[str, ...], *, device: str | torch.device = "cpu",
                    seed: int = 0, batch_size: int = 16, skip_bad: bool = False, progress: bool = False,
                    long_side: int | None = None, provenance: dict[str, Any] | None = None) -> Centres:
    """Features from ``model`` -> class means and OoD centres (K-means or by predicted class).

    In-distribution images are read at native size, OoD images at ``long_side`` (None: native), the
    resolution :func:`woodseg.ood.resolution.resolve_long_side` gives for ``wood.ood_long_side``.
    """
    from woodseg.models.inference import predict_images

    if not ood_paths:
        raise DataError("the OoD set is empty", fix="add OoD images, or train without OoD (wood.variant=none)")
    pin = predict_images(model, in_paths, long_side=None, batch_size=batch_size, device=device,
                         skip_bad=skip_bad, progress=progress, desc="centres: D_in features")
    pood = predict_images(model, ood_paths, long_side=long_side, batch_size=batch_size, device=device,
                          skip_bad=skip_bad, progress=progress, desc="centres: D_ood features")
    cc, valid = class_means(pin.features, in_labels, class_names)
    if cfg.clustering == "kmeans":
        oc, assign = kmeans_centres(pood.features, cfg.K, init=cfg.kmeans_init, iters=cfg.kmeans_iters, seed=seed)
    else:
        oc, assign = predicted_class_centres(pood.features, pood.logits[:, : len(class_names)])
    prov = {"clustering": cfg.clustering, "K": int(oc.shape[0]), "kmeans_init": cfg.kmeans_init,
            "n_in": len(in_paths), "n_ood": len(ood_paths), "ood_long_side": long_side, "seed": seed,
            **(provenance or {})}
    return Centres(cc, valid, oc, assign, prov)
