"""The classifier stage: train F (baseline, W-OoD, ablations, naive baselines) and write ``classifier/``.

Outputs under ``<out_dir>/classifier/``:
    config.yaml     the resolved config
    last.pt         resumable checkpoint; also the trained classifier (``load_classifier`` reads it)
    metrics.jsonl   one line per step: step, epoch, lr, loss and each weighted term, images/s
    centres.npz     W-OoD only: class and OoD centres with provenance (``woodseg.wood.centres``)

No pixel ground truth is used here: the last checkpoint is the result (the official code picks among 18
checkpoints by VOC-train pixel mIoU, reference-spec 3.7; we do not).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from woodseg.config import Config, save_config
from woodseg.data.build import load_dataset, load_ood
from woodseg.errors import ConfigError, DataError
from woodseg.models.cam_net import CamNet, build_cam_net, classifier_checkpoint, load_classifier
from woodseg.train.data import step_loader
from woodseg.train.distributed import barrier, init_distributed, resolve_device, teardown
from woodseg.train.engine import Engine, fingerprint, make_optimizer
from woodseg.wood.centres import Centres, compute_centres
from woodseg.wood.objective import WoodObjective

log = logging.getLogger(__name__)

# Keys that do not change the maths of a run: a resumed run may differ in them.
_RUNTIME_KEYS = {"device", "threads", "checkpoint_every", "checkpoint_minutes", "log_every"}


def classifier_dir(cfg: Config) -> Path:
    return Path(cfg.out_dir) / "classifier"


def train_classifier(cfg: Config, *, restart: bool = False, progress: bool = True) -> Path:
    """Train (or resume) the classifier a config describes; returns the path of ``last.pt``."""
    info = init_distributed(cfg.train.device)
    try:
        return _train(cfg, info, restart, progress)
    finally:
        teardown(info)


def _train(cfg: Config, info, restart: bool, progress: bool) -> Path:
    device = resolve_device(cfg.train.device, info)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    wood, tcfg = cfg.wood, cfg.train
    out = classifier_dir(cfg)

    ds = load_dataset(cfg.data)
    ids = ds.check_split(cfg.data.train_split)
    labels = np.stack([ds.label(i) for i in ids]).astype(np.float32)
    paths = [ds.image_path(i) for i in ids]
    ood = load_ood(cfg.data) if wood.uses_ood else None
    if wood.variant != "none" and not wood.uses_ood and not wood.uses_centres:
        log.warning("wood.variant=%s with every OoD switch off trains like the baseline", wood.variant)

    if wood.uses_centres and wood.clustering == "kmeans" and ood is not None and wood.K > len(ood):
        raise ConfigError(f"wood.K={wood.K} OoD clusters but {ood.source} has only {len(ood)} images",
                          fix=f"set wood.K to at most {len(ood)} or add OoD images")
    num_outputs = ds.num_classes + (1 if wood.variant == "background_class" else 0)
    model = build_cam_net(cfg.model, num_outputs).to(device)
    if tcfg.init_from is not None:
        init_from_checkpoint(model, tcfg.init_from, ds.class_names)
    elif wood.uses_centres:
        log.warning("W-OoD centres from an untrained model carry no meaning; the paper fine-tunes a trained "
                    "classifier F_in (set train.init_from)")
    exclude_index = None
    if wood.variant == "official" and wood.exclude_class in ds.class_names:
        exclude_index = ds.class_names.index(wood.exclude_class)

    world, b = info.world, tcfg.batch_size
    if b % world:
        raise ConfigError(f"train.batch_size={b} is not divisible by the {world} processes",
                          fix="use a batch size that is a multiple of the process count")
    steps_per_epoch = len(ids) // b if tcfg.drop_last else -(-len(ids) // b)
    if steps_per_epoch == 0:
        raise DataError(f"split '{cfg.data.train_split}' has {len(ids)} images, fewer than one batch of {b}",
                        fix="lower train.batch_size or set train.drop_last=false")
    max_steps = tcfg.epochs * steps_per_epoch

    run_fp = fingerprint({
        "data": cfg.data.model_dump(mode="json", exclude={"num_workers"}),
        "model": cfg.model.model_dump(mode="json"),
        "train": cfg.train.model_dump(mode="json", exclude=_RUNTIME_KEYS),
        "wood": wood.model_dump(mode="json"),
        "dataset": ds.fingerprint(cfg.data.train_split),
        "ood": ood.fingerprint() if ood else None,
        "world": world,
    })
    objective = WoodObjective(model, wood, exclude_index)
    runner: torch.nn.Module = objective
    if info.enabled:
        runner = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(*model.param_groups(), tcfg)
    engine = Engine(
        runner, model, optimizer, max_steps=max_steps, steps_per_epoch=steps_per_epoch, out_dir=out, cfg=tcfg,
        run_fingerprint=run_fp, dist=info, progress=progress, desc=f"train {cfg.name} [{wood.variant}]",
        make_checkpoint=lambda: classifier_checkpoint(model, ds.class_names, {
            "variant": wood.variant, "dataset_fingerprint": ds.fingerprint(cfg.data.train_split),
            "ood_fingerprint": ood.fingerprint() if ood else None, "run_name": cfg.name}),
    )
    start, finished = engine.resume(restart)
    if finished:
        log.info("%s is already trained (%d steps); pass --restart to train again", engine.ckpt_path, start)
        return engine.ckpt_path
    if info.is_main:
        save_config(cfg, out / "config.yaml")

    centres: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None] = {"t": None}

    def on_epoch_start(epoch: int) -> None:
        if not wood.uses_centres:
            return
        due = 0 if wood.refresh_every is None else (epoch // wood.refresh_every) * wood.refresh_every
        path = out / "centres.npz"
        current = Centres.load(path) if path.exists() else None
        if current is None or current.provenance.get("epoch") != due or current.provenance.get("run") != run_fp:
            if info.is_main:
                log.info("computing W-OoD centres from the model at epoch %d", epoch)
                c = compute_centres(model, paths, labels, ood.paths, wood, ds.class_names, device=device,
                                    seed=tcfg.seed, skip_bad=cfg.data.on_bad_image == "skip", progress=progress,
                                    provenance={"epoch": due, "run": run_fp, "init_from": str(tcfg.init_from)})
                c.save(path)
            barrier(info)
            current = Centres.load(path)
        centres["t"] = current.tensors(device)

    common = {"start": start, "stop": max_steps, "rank": info.rank, "world": world,
              "skip_bad": cfg.data.on_bad_image == "skip", "num_workers": cfg.data.num_workers}
    loaders = [step_loader(paths, labels, b, tcfg, stream="in", drop_last=tcfg.drop_last, **common)]
    if ood is not None:
        loaders.append(step_loader(ood.paths, None, wood.ood_batch_size, tcfg, stream="ood", **common))
    channels_last = cfg.model.channels_last

    def to_dev(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    def step_fn(batch: tuple) -> dict[str, torch.Tensor]:
        b_in = batch[0]
        if b_in is None:
            return {}
        b_ood = batch[1] if len(batch) > 1 else None
        x_ood = to_dev(b_ood["x"]) if b_ood is not None else None
        return runner(to_dev(b_in["x"]), b_in["y"].to(device), x_ood, centres["t"])

    engine.run(zip(*loaders, strict=False), step_fn, start, on_epoch_start=on_epoch_start)
    barrier(info)
    return engine.ckpt_path


def init_from_checkpoint(model: CamNet, path: Path, class_names: tuple[str, ...]) -> None:
    """Start from a trained classifier (W-OoD fine-tunes F_in). An extra background output starts fresh."""
    src, src_names = load_classifier(path)
    if tuple(src_names) != tuple(class_names):
        raise ConfigError(f"{path} was trained on classes {list(src_names)}, this run has {list(class_names)}",
                          path=path, fix="start from a classifier trained on the same class list")
    if src.cfg.backbone != model.cfg.backbone:
        raise ConfigError(f"{path} is a {src.cfg.backbone}, this run builds a {model.cfg.backbone}", path=path,
                          fix="set model.backbone to match the checkpoint")
    state = src.state_dict()
    w = state["classifier.weight"]
    if w.shape[0] != model.num_outputs:  # background_class: keep the C class rows, new row for background
        fresh = model.classifier.weight.detach().clone()
        fresh[: w.shape[0]] = w
        state["classifier.weight"] = fresh
    model.load_state_dict(state)
