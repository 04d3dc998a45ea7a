"""The ``cam`` stage: load ``classifier/last.pt`` and write ``cams/<id>.npz`` for the judged splits.

``cam.method`` picks the seeds: ``cam`` (IRN's multi-scale CAM) or ``advcam`` (AdvCAM, one image at a
time). The method and, for AdvCAM, its parameters are part of the folder's protocol, so seeds of different
methods never mix in one folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from woodseg.config import Config, save_config
from woodseg.data.build import load_dataset
from woodseg.models.cam_net import load_classifier
from woodseg.models.checkpoint import load_checkpoint
from woodseg.seeds.advcam import AdvParams, advcam_seed_fn
from woodseg.seeds.cam import make_cams
from woodseg.train.distributed import DistInfo, resolve_device

log = logging.getLogger(__name__)


def cam_splits(cfg: Config) -> list[str]:
    if cfg.cam.splits:
        return list(cfg.cam.splits)
    return [s for s in (cfg.data.seed_split, cfg.data.heldout_split) if s]


def cam_stage(cfg: Config, *, checkpoint: Path | None = None, restart: bool = False, progress: bool = True) -> Path:
    """Make CAM seeds for every image of the configured splits; returns the seed folder."""
    device = resolve_device(cfg.train.device, DistInfo())
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    ckpt = Path(checkpoint) if checkpoint else Path(cfg.out_dir) / "classifier" / "last.pt"
    model, names = load_classifier(ckpt, device)
    ds = load_dataset(cfg.data)
    if tuple(names) != ds.class_names:
        from woodseg.errors import ConfigError

        raise ConfigError(f"{ckpt} was trained on {list(names)}, the dataset has {list(ds.class_names)}",
                          path=ckpt, fix="use the classifier trained on this dataset")
    out = Path(cfg.out_dir) / "cams"
    state = load_checkpoint(ckpt)
    protocol = {"method": cfg.cam.method, "checkpoint": str(ckpt), "run_fingerprint": state.get("run_fingerprint"),
                "step": state.get("step"), "scales": list(cfg.cam.scales), "flip": cfg.cam.flip,
                "dtype": cfg.cam.dtype, "classes": list(ds.class_names)}
    seed_fn, batch_size = None, 8
    if cfg.cam.method == "advcam":
        params = AdvParams.from_config(cfg.cam)
        protocol.update(adv_iters=params.iters, adv_step=params.step, adv_coeff=params.coeff,
                        adv_score_th=params.score_th)
        seed_fn = advcam_seed_fn(model, cfg.cam.scales, params, cfg.cam.flip, device)
        batch_size = 1  # slow per image: write (and resume) image by image
    ids: list[str] = []
    for split in cam_splits(cfg):
        ids += [i for i in ds.check_split(split) if i not in set(ids)]
    make_cams(model, ds, ids, out, scales=cfg.cam.scales, flip=cfg.cam.flip, dtype=cfg.cam.dtype, device=device,
              batch_size=batch_size, protocol=protocol, restart=restart, skip_bad=cfg.data.on_bad_image == "skip",
              progress=progress, seed_fn=seed_fn)
    save_config(cfg, out / "config.yaml")
    return out
