"""The classifier stage: train F (baseline, W-OoD, ablations, naive baselines) and write ``classifier/``.

Outputs under ``<out_dir>/classifier/``:
    config.yaml     the resolved config
    last.pt         resumable checkpoint; also the trained classifier (``load_classifier`` reads it)
    metrics.jsonl   one line per step: step, epoch, lr, loss and each weighted term, images/s
    centres.npz     W-OoD only: class and OoD centres with provenance (``woodseg.wood.centres``)

No pixel ground truth is used here: the last checkpoint is the result (the official code picks among 18
checkpoints by VOC-train pixel mIoU in naver-ai/w-ood `step/train_cam_clustering.py`; we do not).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from woodseg.config import Config, save_config
from woodseg.data.build import load_dataset, load_ood
from woodseg.errors import ConfigError
from woodseg.models.cam_net import (
    CamNet,
    build_cam_net,
    classifier_checkpoint,
    classifier_meta,
    load_classifier,
)
from woodseg.ood.resolution import NATIVE, ood_input_record, resolve_long_side
from woodseg.runtime.amp import set_amp_mode
from woodseg.runtime.device import resolve_device, set_threads
from woodseg.runtime.fingerprint import changes, fingerprint, read_record, stage_record
from woodseg.runtime.paths import STAGE_RECORD, RunPaths
from woodseg.train.data import step_loader
from woodseg.train.distributed import barrier, init_distributed, teardown
from woodseg.train.distributed import steps_per_epoch as epoch_steps
from woodseg.train.engine import Engine, make_optimizer
from woodseg.wood.centres import Centres, compute_centres
from woodseg.wood.objective import WoodObjective

log = logging.getLogger(__name__)

# Keys that do not change the maths of a run: a resumed run may differ in them.
_RUNTIME_KEYS = {"checkpoint_every", "checkpoint_minutes", "log_every"}


def classifier_dir(cfg: Config) -> Path:
    return RunPaths.of(cfg).classifier


def train_classifier(cfg: Config, *, restart: bool = False, progress: bool = True) -> Path:
    """Train (or resume) the classifier a config describes; returns the path of ``last.pt``."""
    info = init_distributed(cfg.runtime.device)
    try:
        return _train(cfg, info, restart, progress)
    finally:
        teardown(info)


def _train(cfg: Config, info, restart: bool, progress: bool) -> Path:
    device = resolve_device(cfg.runtime.device, info.local_rank if info.enabled else None)
    set_threads(cfg.runtime.threads)
    set_amp_mode(cfg.runtime.amp)
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
    steps_per_epoch = epoch_steps(len(ids), b, info, key="train.batch_size",
                                  split=cfg.data.train_split, drop_last=tcfg.drop_last)
    max_steps = tcfg.epochs * steps_per_epoch

    fp_parts = {
        "data": cfg.data.model_dump(mode="json"),
        "model": cfg.model.model_dump(mode="json"),
        "train": cfg.train.model_dump(mode="json", exclude=_RUNTIME_KEYS),
        "wood": wood.model_dump(mode="json"),
        "dataset": ds.fingerprint(cfg.data.train_split),
        "ood": ood.fingerprint() if ood else None,
        "world": world,
    }
    run_fp = _accept_legacy(fingerprint(fp_parts), fp_parts, out / "last.pt", ds.class_names, restart)
    # What the classifier is made from: its settings, and the content of its data and of the model it starts from.
    settings = fingerprint({k: v for k, v in fp_parts.items() if k not in ("dataset", "ood")})
    record = stage_record("classifier", {"settings": settings}, {"init_from": tcfg.init_from},
                          {"dataset": fp_parts["dataset"], "ood": fp_parts["ood"]})
    record_path = out / STAGE_RECORD
    old = read_record(record_path)
    barrier(info)  # every process decides on the same record before the main one rewrites it
    if not restart and old is not None and (out / "last.pt").exists() and old.get("config") == record["config"] \
            and changes(old, record):  # same settings, other input data or starting model: retrain
        log.warning("%s: %s: training again", out, "; ".join(changes(old, record)))
        restart = True
    ood_side = resolve_long_side(wood.ood_long_side, tcfg.resize_long)
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
            "ood_fingerprint": ood.fingerprint() if ood else None, "run_name": cfg.name,
            "ood_input": ood_input_record(wood.ood_long_side, tcfg.resize_long), "inputs": record["inputs"]}),
    )
    start, finished = engine.resume(restart)
    if info.is_main and old != record:
        from woodseg.fsutil import atomic_write_json

        atomic_write_json(record_path, record)
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
        stale = current is None or current.provenance.get("epoch") != due or current.provenance.get("run") != run_fp \
            or current.provenance.get("inputs", record["fingerprint"]) != record["fingerprint"]
        if stale:
            if info.is_main:
                log.info("computing W-OoD centres from the model at epoch %d", epoch)
                c = compute_centres(model, paths, labels, ood.paths, wood, ds.class_names, device=device,
                                    seed=tcfg.seed, skip_bad=cfg.data.on_bad_image == "skip", progress=progress,
                                    long_side=ood_side, batch_size=cfg.runtime.centre_batch_size,
                                    provenance={"epoch": due, "run": run_fp, "init_from": str(tcfg.init_from),
                                                "inputs": record["fingerprint"]})
                c.save(path)
            barrier(info)
            current = Centres.load(path)
        centres["t"] = current.tensors(device)

    common = {"start": start, "stop": max_steps, "rank": info.rank, "world": world,
              "skip_bad": cfg.data.on_bad_image == "skip", "num_workers": cfg.runtime.workers}
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


def _accept_legacy(run_fp: str, parts: dict, ckpt: Path, class_names: tuple[str, ...], restart: bool) -> str:
    """The run fingerprint to resume under: ``run_fp``, or the one woodseg gave this same run before
    ``wood.ood_long_side`` could be ``native`` (it was null) and ``wood.exclude_class`` defaulted to bottle,
    so run folders made then resume (and count as trained) instead of being refused."""
    if restart or not ckpt.is_file():
        return run_fp
    stored = classifier_meta(ckpt).get("run_fingerprint")
    if stored in (None, run_fp):
        return run_fp
    wood = dict(parts["wood"])
    if wood.get("ood_long_side") == NATIVE:
        wood["ood_long_side"] = None
    unused = wood["variant"] != "official" or wood.get("exclude_class") not in class_names
    for exclude in ({wood.get("exclude_class"), None, "bottle"} if unused else {wood.get("exclude_class")}):
        legacy = fingerprint({**parts, "wood": {**wood, "exclude_class": exclude}})
        if legacy == stored:
            log.info("%s: accepting a checkpoint fingerprinted by an earlier woodseg (same run)", ckpt)
            return legacy
    return run_fp


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
