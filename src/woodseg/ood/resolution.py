"""The one setting for the resolution OoD images are fed to a classifier (ranking, flags, centres).

``wood.ood_long_side`` is a long side in pixels, ``native`` (no resize), or null: the classifier's training
resolution, the middle of ``train.resize_long`` (its random long-side range). Training records the resolved
value in the classifier's checkpoint (``ood_input``), so ``woodseg ood rank`` scores candidates the way that
classifier saw images unless the config says otherwise. Which images count as hard OoD (paper Sec. 3.1)
depends on it: scoring far from the training resolution is warned about (an error with ``--strict``).
Training itself feeds OoD images through the same random resize and crop as in-distribution images.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from woodseg.errors import ConfigError

log = logging.getLogger(__name__)

NATIVE = "native"
#: Scoring more than this factor away from the training resolution is warned about.
MAX_RATIO = 2.0


def training_long_side(resize_long: Sequence[int]) -> int:
    """The classifier's training resolution: the middle of its random long-side range."""
    lo, hi = int(resize_long[0]), int(resize_long[1])
    return round((lo + hi) / 2)


def resolve_long_side(setting: int | str | None, resize_long: Sequence[int]) -> int | None:
    """The long side OoD images are resized to (None: native size) for a ``wood.ood_long_side`` setting."""
    if setting == NATIVE:
        return None
    if setting is None:
        return training_long_side(resize_long)
    return int(setting)


def ood_input_record(setting: int | str | None, resize_long: Sequence[int]) -> dict[str, Any]:
    """What a classifier checkpoint records about how OoD images are fed to it."""
    side = resolve_long_side(setting, resize_long)
    return {"long_side": NATIVE if side is None else side, "train_resize_long": [int(v) for v in resize_long]}


def check_resolution(long_side: int | None, resize_long: Sequence[int] | None, *, strict: bool = False,
                     native_long_side: int | None = None) -> None:
    """Warn (raise with ``strict``) when OoD images are scored more than 2x from the training resolution.

    ``long_side`` None means native size; ``native_long_side`` is then a typical image's long side.
    """
    if resize_long is None:
        return
    side = long_side if long_side is not None else native_long_side
    if side is None or side <= 0:
        return
    trained = training_long_side(resize_long)
    if max(side / trained, trained / side) <= MAX_RATIO:
        return
    what = f"{side} px" if long_side is not None else f"native size (about {side} px)"
    msg = (f"OoD candidates are scored at a long side of {what}, but the classifier was trained at "
           f"{resize_long[0]}-{resize_long[1]} px (about {trained} px): which images look hard depends on it")
    fix = f"set wood.ood_long_side={trained} (or null: the training resolution), or pass the classifier's config"
    if strict:
        raise ConfigError(msg, fix=fix)
    log.warning("%s; fix: %s", msg, fix)


def scoring_long_side(setting: int | str | None, checkpoint_meta: dict[str, Any],
                      resize_long: Sequence[int] | None) -> tuple[int | None, list[int] | None]:
    """(long side to score OoD images at, None = native; the classifier's training range, if known).

    An explicit ``wood.ood_long_side`` wins; null takes what the classifier's checkpoint recorded, else
    the middle of ``resize_long`` (the config's training range, for checkpoints without a record).
    """
    rec = checkpoint_meta.get("ood_input") or {}
    train_range = rec.get("train_resize_long") or (list(resize_long) if resize_long is not None else None)
    if setting is None and "long_side" in rec:
        side = rec["long_side"]
        return (None if side == NATIVE else int(side)), train_range
    if setting is None and train_range is None:
        raise ConfigError("the classifier records no training resolution and none is configured",
                          fix="set wood.ood_long_side (e.g. 500 for VOC-like images) or pass the run's config")
    return resolve_long_side(setting, train_range or (0, 0)), train_range


def config_scoring_long_side(cfg: Any, checkpoint: str | Path) -> int | None:
    """The long side a run's config scores OoD images at with this classifier (None: native)."""
    from woodseg.models.cam_net import classifier_meta

    side, _ = scoring_long_side(cfg.wood.ood_long_side, classifier_meta(checkpoint), cfg.train.resize_long)
    return side
