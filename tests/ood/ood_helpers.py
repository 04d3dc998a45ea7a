"""Helpers for the hard-OoD collection tests: tiny images, random resnet10 checkpoints, synthetic rankings.

A uniquely named module (not conftest) so that `from ood_helpers import ...` cannot pick up another
folder's conftest.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from woodseg.config import ModelConfig
from woodseg.models.cam_net import build_cam_net, classifier_checkpoint
from woodseg.ood.candidates import Candidate
from woodseg.ood.rank import Ranked, write_ranked

CLASSES = ("cat", "dog", "train")


def make_images(folder: Path, n: int, seed: int = 0, sizes: tuple[int, int] = (32, 64), ext: str = ".jpg") -> list[str]:
    """``n`` random RGB images of random sizes; returns their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(sizes[0], sizes[1] + 1, 2))
        name = f"img{i:03d}{ext}"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)
        names.append(name)
    return names


def make_checkpoint(path: Path, seed: int = 0, classes: tuple[str, ...] = CLASSES) -> Path:
    torch.manual_seed(seed)
    cfg = ModelConfig(backbone="resnet10", weights=None, freeze_bn=False, frozen_stages=0)
    net = build_cam_net(cfg, len(classes))
    torch.save(classifier_checkpoint(net, classes, {}), path)
    return path


def synthetic_ranked(root: Path, out: Path, n_images: int = 8, seed: int = 0,
                     classes: tuple[str, ...] = CLASSES, overlap: bool = True) -> Ranked:
    """Images on disk plus a merged ranking whose candidates are chosen here (no model involved).

    Class k's candidates are the images i with i % len(classes) == k, plus (``overlap``) image 0 for every
    class, with p descending in image order.
    """
    names = make_images(root, n_images, seed=seed)
    cands: dict[str, list[Candidate]] = {}
    for k, cls in enumerate(classes):
        members = [i for i in range(n_images) if i % len(classes) == k or (overlap and i == 0)]
        ordered = sorted(members)
        cands[cls] = [Candidate(names[i], cls, round(0.99 - 0.04 * r, 4), r + 1,
                                compactness=0.9 if i % 2 else 0.1, stability=math.nan)
                      for r, i in enumerate(ordered)]
    meta = {"class_names": list(classes), "root": str(root), "threshold": 0.5, "checkpoint_sha": "test",
            "pool_fingerprint": f"synthetic-{seed}", "pool": str(root / "pool.txt")}
    return write_ranked(out, cands, meta)
