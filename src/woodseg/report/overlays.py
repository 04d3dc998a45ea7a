"""Choosing and drawing the CAM overlays (paper Fig. 3): where do the methods differ most?

Every image of the split is scored per run (image mIoU of its seed at the run's best threshold); the
report shows the images where the first compared run gained most over the baseline, plus a couple where
it lost, so the page does not only show wins. The choice is deterministic (ties broken by image id).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from woodseg.data.dataset import LabelledImageSet
from woodseg.data.images import load_image, load_mask
from woodseg.errors import DataError
from woodseg.evaluate.metrics import confusion, scores
from woodseg.evaluate.seeds import seed_label_map
from woodseg.report.figures import OverlayPanel, overlay_row
from woodseg.report.runs import RunData
from woodseg.seeds.store import Seed, load_seed


@dataclass
class ImageScore:
    image_id: str
    miou: dict[str, float]  # run name -> image mIoU at the run's threshold

    def gain(self, baseline: str, other: str) -> float:
        d = self.miou[other] - self.miou[baseline]
        return 0.0 if math.isnan(d) else d


@dataclass
class Overlay:
    image_id: str
    kind: str  # "gain" or "loss"
    gain: float
    png: bytes
    classes: list[str]
    miou: dict[str, float]


def _seed(run: RunData, image_id: str, shape: tuple[int, int]) -> Seed:
    path = run.cam_dir / f"{image_id}.npz"
    if not path.is_file():
        raise DataError(f"CAM of image '{image_id}' for run '{run.name}' does not exist", path=path,
                        fix=f"run `woodseg cam` with out_dir={run.folder} (the report draws CAMs of the judged split)")
    seed = load_seed(path)
    if tuple(seed.high_res.shape[1:]) != tuple(shape):
        raise DataError(f"CAM is {tuple(seed.high_res.shape[1:])} but the image mask is {tuple(shape)}", path=path,
                        fix="remake the CAMs for this dataset (`woodseg cam --restart`)")
    return seed


def image_scores(ds: LabelledImageSet, split: str, runs: Sequence[RunData],
                 thresholds: dict[str, float]) -> list[ImageScore]:
    """Per-image mIoU of every run's seed at its threshold, over the split's images (ids in split order)."""
    ids = ds.check_split(split, need_masks=True)
    num_labels = ds.num_classes + 1
    out = []
    for image_id in ids:
        gt = load_mask(ds.mask_path(image_id))
        per = {}
        for run in runs:
            seed = _seed(run, image_id, gt.shape)
            lab = seed_label_map(seed.high_res.astype(np.float32), seed.keys, thresholds[run.name])
            per[run.name] = scores(confusion(gt, lab, num_labels)).miou
        out.append(ImageScore(image_id, per))
    return out


def choose(image_scores_: Sequence[ImageScore], baseline: str, other: str, n: int,
           n_lost: int = 2) -> list[tuple[ImageScore, str]]:
    """The ``n`` images to show: largest gains of ``other`` over ``baseline``, then up to ``n_lost`` losses."""
    if n <= 0:
        return []
    by_gain = sorted(image_scores_, key=lambda s: (-s.gain(baseline, other), s.image_id))
    lost = sorted((s for s in image_scores_ if s.gain(baseline, other) < 0),
                  key=lambda s: (s.gain(baseline, other), s.image_id))
    k_lost = min(n_lost, len(lost), n // 2)
    lost = lost[:k_lost]
    lost_ids = {s.image_id for s in lost}
    winners = [s for s in by_gain if s.image_id not in lost_ids][: n - k_lost]
    return [(s, "gain") for s in winners] + [(s, "loss") for s in lost]


def image_and_mask(ds: LabelledImageSet, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    """An image and its ground-truth mask for an overlay figure, checked to be the same size."""
    gt = load_mask(ds.mask_path(image_id))
    image = load_image(ds.image_path(image_id))
    if image.shape[:2] != gt.shape:
        raise DataError(f"image is {image.shape[:2]} but its mask is {gt.shape}", path=ds.image_path(image_id),
                        fix="check that images and masks belong together")
    return image, gt


def render_overlays(ds: LabelledImageSet, chosen: Sequence[tuple[ImageScore, str]], runs: Sequence[RunData],
                    thresholds: dict[str, float], baseline: str, other: str) -> list[Overlay]:
    labels = ["background", *ds.class_names]
    out = []
    for score, kind in chosen:
        image_id = score.image_id
        image, gt = image_and_mask(ds, image_id)
        panels = []
        for run in runs:
            seed = _seed(run, image_id, gt.shape)
            hr = seed.high_res.astype(np.float32)
            heat = hr.max(0) if len(seed.keys) else np.zeros(gt.shape, np.float32)
            panels.append(OverlayPanel(run.name, heat, seed_label_map(hr, seed.keys, thresholds[run.name]),
                                       thresholds[run.name], score.miou[run.name]))
        classes = [ds.class_names[i] for i in np.flatnonzero(ds.label(image_id) > 0)]
        out.append(Overlay(image_id, kind, score.gain(baseline, other),
                           overlay_row(image, gt, panels, labels, image_id), classes, dict(score.miou)))
    return out
