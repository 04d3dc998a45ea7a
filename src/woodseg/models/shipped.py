"""Backbone weights that ship inside the package, made by ``woodseg pretrain`` and checked on every load.

``model.weights: corpus-resnet10`` (and ``irn.weights`` / ``segmenter.weights``) names the ResNet-10 that
``woodseg pretrain`` trained on the benchmark's pretraining corpus (:mod:`woodseg.data.benchmark.corpus`):
the benchmark world's stand-in for ImageNet weights. Beside each file lies ``<name>.json``, the record the
command wrote (settings, corpus, accuracy, sha256); a file whose sha256 differs from its record is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from woodseg.errors import ConfigError
from woodseg.fsutil import sha256_file

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

SHIPPED: dict[str, str] = {"corpus-resnet10": "resnet10"}
"""Name -> the backbone the weights belong to."""


def is_shipped(name: str | None) -> bool:
    return name in SHIPPED


def shipped_record(name: str) -> dict:
    """The JSON record ``woodseg pretrain`` wrote beside the shipped file."""
    path = WEIGHTS_DIR / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"the shipped weights record {path} is missing or unreadable ({exc.__class__.__name__})",
                          fix="reinstall woodseg, or rebuild the weights with `woodseg pretrain --ship`") from exc


def shipped_weights(name: str, backbone: str) -> Path:
    """The checked path of shipped weights ``name`` for ``backbone``."""
    if SHIPPED.get(name) != backbone:
        raise ConfigError(f"the shipped weights '{name}' are for {SHIPPED.get(name)}, not {backbone}",
                          fix=f"set the backbone to {SHIPPED.get(name)} or use other weights")
    path = WEIGHTS_DIR / f"{name}.pth"
    record = shipped_record(name)
    if not path.is_file() or sha256_file(path) != record.get("sha256"):
        raise ConfigError(f"the shipped weights {path} are missing or do not match their recorded sha256",
                          fix="reinstall woodseg, or rebuild them with `woodseg pretrain --ship`")
    return path


def weights_file(weights: str | None, backbone: str) -> Path | None:
    """The file a ``weights`` setting reads (shipped weights resolved and checked), or None for random
    init and torchvision's ImageNet download: what a stage records as its input."""
    if weights in (None, "imagenet"):
        return None
    if is_shipped(weights):
        return shipped_weights(weights, backbone)  # type: ignore[arg-type]
    return Path(weights)  # type: ignore[arg-type]
