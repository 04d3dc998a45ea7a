"""IR labels: confident foreground and background from a seed, 255 (ignore) between (IRN ``step/cam_to_ir_label.py``).

The seed is labelled twice, at a high threshold (confident foreground)
and at a low one (confident background), each label map refined by the label-unary dense CRF. A pixel
is its foreground class where the high-threshold map says so, background (0) where both maps say
background, and 255 where only the low-threshold map does (the uncertain band the affinity loss ignores).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from woodseg.evaluate.seeds import seed_label_map
from woodseg.refine.crf import LABEL_CRF, CrfParams, seed_crf_labels

IGNORE = 255


@dataclass(frozen=True)
class IrThresholds:
    """Seed thresholds: a pixel above ``fg`` is confident foreground, one at or below ``bg`` confident background."""

    fg: float
    bg: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.bg <= self.fg <= 1.0:
            raise ValueError(f"IR thresholds need 0 <= bg <= fg <= 1, got fg={self.fg}, bg={self.bg}")


# Named settings: IRN (run_sample.py defaults), W-OoD's pseudo-GT script, AdvCAM.
IR_THRESHOLDS: dict[str, IrThresholds] = {
    "irn": IrThresholds(fg=0.30, bg=0.05),
    "wood": IrThresholds(fg=0.30, bg=0.15),
    "advcam": IrThresholds(fg=0.35, bg=0.15),
}


def combine_confident(fg_labels: np.ndarray, bg_labels: np.ndarray) -> np.ndarray:
    """Foreground from ``fg_labels``; 0 where both maps are background; 255 where only the low one is foreground."""
    out = fg_labels.astype(np.uint8).copy()
    out[fg_labels == 0] = IGNORE
    out[(fg_labels == 0) & (bg_labels == 0)] = 0
    return out


def ir_labels(image: np.ndarray | None, high_res: np.ndarray, keys: np.ndarray, thresholds: IrThresholds,
              crf: bool = True, params: CrfParams = LABEL_CRF) -> np.ndarray:
    """IR label map HxW uint8 (0 background, key + 1 a class, 255 ignore) of one image's seed.

    ``high_res`` is the seed's [n, H, W] map (each class max-normalised) and ``keys`` its classifier
    indices; ``image`` the HxWx3 uint8 RGB image (only read when ``crf`` is on).
    """
    if crf:
        if image is None:
            raise ValueError("the CRF needs the RGB image")
        fg = seed_crf_labels(image, high_res, keys, thresholds.fg, params)
        bg = seed_crf_labels(image, high_res, keys, thresholds.bg, params)
    else:
        fg = seed_label_map(high_res, keys, thresholds.fg)
        bg = seed_label_map(high_res, keys, thresholds.bg)
    return combine_confident(fg, bg)
