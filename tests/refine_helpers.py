"""A tiny run folder with seeds for the refinement-stage tests (random classifier, nothing downloaded)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from scipy import ndimage

from helpers import random_checkpoint, tiny_overrides
from woodseg.config import Config, load_config
from woodseg.data.build import load_dataset
from woodseg.data.images import load_mask
from woodseg.seeds.stage import cam_stage
from woodseg.seeds.store import Seed, load_seed, save_seed

REFINE = {"cam.splits": "[train_aug,val]", "ir_labels.preset": "wood", "irn.backbone": "resnet10",
          "irn.weights": "classifier", "irn.epochs": 1, "irn.batch_size": 4, "irn.crop_size": 32, "irn.radius": 5,
          "irn.checkpoint_every": 2, "walk.preset": "wood", "walk.exp_times": 4, "walk.edge_pad": 48}


def refine_config(root: Path, out: Path, **extra: object) -> Config:
    return load_config(None, tiny_overrides(root, out, **{**REFINE, **extra}))


def seeded_run(root: Path, out: Path) -> Config:
    """``out`` with a random classifier and its seeds for train_aug and val."""
    random_checkpoint(out)
    cfg = refine_config(root, out)
    cam_stage(cfg, progress=False)
    mask_like_seeds(cfg)
    return cfg


def mask_like_seeds(cfg: Config) -> None:
    """Replace the random classifier's maps by blurred, noisy copies of the true masks (kept in the folder
    the cam stage made, so its index stays the protocol): refinement then has something to find."""
    ds = load_dataset(cfg.data)
    rng = np.random.default_rng(0)
    for path in sorted(Path(cfg.out_dir, "seeds").glob("*.npz")):
        seed = load_seed(path)
        gt = load_mask(ds.mask_path(path.stem))
        maps = []
        for k in seed.keys:
            m = ndimage.gaussian_filter((gt == k + 1).astype(np.float32), 3) + 0.1 * rng.random(gt.shape)
            maps.append(m / m.max())
        high = np.stack(maps).astype(np.float32)
        h4, w4 = seed.cam.shape[1:]
        cam = np.stack([ndimage.zoom(m, (h4 / m.shape[0], w4 / m.shape[1]), order=1) for m in high])
        save_seed(path, Seed(seed.keys, np.clip(cam, 0, 1).astype(np.float32), high, seed.scales, seed.size))


def copy_run(src: Path, dst: Path, root: Path, **extra: object) -> Config:
    shutil.copytree(src, dst)
    return refine_config(root, dst, **extra)
