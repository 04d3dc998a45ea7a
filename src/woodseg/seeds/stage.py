"""The ``cam`` stage: load the classifier and write ``seeds/<id>.npz`` for the judged splits.

``cam.method`` picks the seeds: ``cam`` (IRN's multi-scale CAM) or ``advcam`` (AdvCAM, one image at a
time). The method and, for AdvCAM, its parameters are the folder's protocol, so seeds of different methods
never mix in one folder; the classifier's content hash is its input, so a retrained classifier remakes
the seeds. Sharded with ``--shard i/n`` or under torchrun (:mod:`woodseg.runtime.driver`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from woodseg.config import Config, save_config
from woodseg.data.build import load_dataset
from woodseg.errors import ConfigError
from woodseg.models.cam_net import load_classifier
from woodseg.runtime.amp import set_amp_mode
from woodseg.runtime.device import stage_device
from woodseg.runtime.fingerprint import file_sha
from woodseg.runtime.paths import RunPaths
from woodseg.runtime.shard import Shard
from woodseg.seeds.advcam import AdvParams, advcam_scale_map
from woodseg.seeds.cam import make_cams

log = logging.getLogger(__name__)


def cam_splits(cfg: Config) -> list[str]:
    if cfg.cam.splits:
        return list(cfg.cam.splits)
    return [s for s in (cfg.data.seed_split, cfg.data.heldout_split) if s]


def seed_ids(cfg: Config, ds) -> list[str]:  # noqa: ANN001 - a LabelledImageSet
    """Every image of the seed splits, once, in split order."""
    ids: dict[str, None] = {}
    for split in cam_splits(cfg):
        ids.update(dict.fromkeys(ds.check_split(split)))
    return list(ids)


def cam_stage(cfg: Config, *, checkpoint: Path | None = None, restart: bool = False, progress: bool = True,
              shard: Shard | None = None) -> Path:
    """Make seeds for this shard's images of the configured splits; returns the seed folder."""
    device = stage_device(cfg.runtime.device, cfg.runtime.threads)
    set_amp_mode(cfg.runtime.amp)
    paths = RunPaths.of(cfg)
    ckpt = Path(checkpoint) if checkpoint else paths.checkpoint
    model, names = load_classifier(ckpt, device)
    ds = load_dataset(cfg.data)
    if tuple(names) != ds.class_names:
        raise ConfigError(f"{ckpt} was trained on {list(names)}, the dataset has {list(ds.class_names)}",
                          path=ckpt, fix="use the classifier trained on this dataset")
    out = paths.seeds
    protocol = {"method": cfg.cam.method, "checkpoint": str(ckpt), "scales": list(cfg.cam.scales),
                "flip": cfg.cam.flip, "dtype": cfg.cam.dtype, "classes": list(ds.class_names)}
    scale_map, batch_size = None, cfg.runtime.cam_batch_size
    if cfg.cam.method == "advcam":
        params = AdvParams.from_config(cfg.cam)
        protocol.update(adv_iters=params.iters, adv_step=params.step, adv_coeff=params.coeff,
                        adv_score_th=params.score_th)
        scale_map = advcam_scale_map(model, params, cfg.cam.flip)
        batch_size = 1  # slow per image: write (and resume) image by image
    protocol["batch_size"] = batch_size  # batched convolutions round differently: part of what made the seeds
    make_cams(model, ds, seed_ids(cfg, ds), out, scales=cfg.cam.scales, flip=cfg.cam.flip, dtype=cfg.cam.dtype,
              device=device, batch_size=batch_size, protocol=protocol, inputs={"classifier": file_sha(ckpt)},
              restart=restart, skip_bad=cfg.data.on_bad_image == "skip", progress=progress, scale_map=scale_map,
              shard=shard or Shard.resolve())
    save_config(cfg, out / "config.yaml")
    return out
