"""The ``irn`` stage: train IRN's boundary branch on the IR labels with the shared engine.

Reads ``ir_labels/<id>.png`` of the IR-label split and writes ``irn/{last.pt, metrics.jsonl, stage.json,
config.yaml}``. Training resumes from ``last.pt`` (same data order, :mod:`woodseg.train.sampler`), runs under
torchrun as DDP, and is redone when its inputs change (the IR-label folder's ``index.json``, the backbone
weights file) with the same settings; other settings on a trained folder are refused (``--restart``).

``irn.weights: classifier`` starts the frozen backbone from the run's own classifier instead of ImageNet
weights. This is a deviation from IRN (which uses an ImageNet ResNet-50) for data where no ImageNet weights
exist, e.g. the embedded benchmark.
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from woodseg.config import Config, TrainConfig, save_config
from woodseg.data.build import load_dataset
from woodseg.data.images import load_image
from woodseg.errors import CheckpointError, ConfigError, DataError
from woodseg.fsutil import atomic_write_json
from woodseg.models.cam_net import load_classifier
from woodseg.models.checkpoint import load_checkpoint
from woodseg.models.irn import IRN, irn_optimizer, irn_step, irn_train_sample
from woodseg.models.shipped import weights_file
from woodseg.refine.inputs import load_label_png, split_ids
from woodseg.refine.ir_stage import ir_split
from woodseg.runtime.amp import set_amp_mode
from woodseg.runtime.device import resolve_device, set_threads
from woodseg.runtime.driver import ItemFolder, verify_items
from woodseg.runtime.fingerprint import changes, read_record, stage_record
from woodseg.runtime.paths import STAGE_RECORD, RunPaths
from woodseg.train.distributed import barrier, init_distributed, teardown
from woodseg.train.distributed import steps_per_epoch as epoch_steps
from woodseg.train.engine import Engine
from woodseg.train.sampler import StepBatchSampler

log = logging.getLogger(__name__)

FORMAT = "woodseg.irn/1"


class IrLabelImages(Dataset):
    """Images with their IR labels under IRN's augmentation, keyed ``(index, epoch, step)`` like the classifier's."""

    def __init__(self, images: list[Path], labels: list[Path], num_labels: int, crop: int,
                 scale_range: tuple[float, float], seed: int) -> None:
        self.images, self.labels, self.num_labels = images, labels, num_labels
        self.crop, self.scale_range, self.seed = crop, scale_range, seed
        self.stream = zlib.crc32(b"irn")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int, int]) -> dict[str, torch.Tensor]:
        index, epoch, _ = key
        image = load_image(self.images[index])
        label = load_label_png(self.labels[index], image.shape[:2], self.num_labels, "IR label",
                               "remake the IR labels: `woodseg ir-labels --restart`")
        rng = np.random.default_rng([self.seed, self.stream, index, epoch])
        return irn_train_sample(image, label, rng, crop=self.crop, scale_range=self.scale_range)


def _collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([i[k] for i in items]) for k in items[0]}


def classifier_backbone_state(path: Path, backbone: str) -> dict[str, torch.Tensor]:
    """The classifier's ResNet stages as an IRN backbone state dict (``irn.weights: classifier``)."""
    net, _ = load_classifier(path)
    if net.cfg.backbone != backbone:
        raise ConfigError(f"irn.weights=classifier but the classifier is a {net.cfg.backbone}, irn.backbone is "
                          f"{backbone}", path=path, fix=f"set irn.backbone={net.cfg.backbone}")
    out = {}
    for key, value in net.stages.state_dict().items():
        stage, rest = key.split(".", 1)
        if stage == "0":
            block, rest2 = rest.split(".", 1)
            key = f"0.{block}.{rest2}" if int(block) < 4 else f"1.{rest2}"
        else:
            key = f"{int(stage) + 1}.{rest}"
        out[key] = value
    return out


def build_irn(cfg: Config) -> tuple[IRN, Path | None]:
    """IRN with its backbone weights as ``irn.weights`` says; returns the weights file that was read (or None)."""
    weights = cfg.irn.weights
    if weights == "classifier":
        ckpt = RunPaths.of(cfg).checkpoint
        model = IRN(cfg.irn.backbone, None)
        model.backbone.load_state_dict(classifier_backbone_state(ckpt, cfg.irn.backbone))
        return model, ckpt
    return IRN(cfg.irn.backbone, weights), weights_file(weights, cfg.irn.backbone)


def irn_stage(cfg: Config, *, restart: bool = False, progress: bool = True, **_: Any) -> Path:
    """Train (or resume, or skip when trained from the same inputs) IRN; returns ``irn/last.pt``."""
    info = init_distributed(cfg.runtime.device)
    try:
        return _train(cfg, info, restart, progress)
    finally:
        teardown(info)


def _train(cfg: Config, info, restart: bool, progress: bool) -> Path:  # noqa: ANN001 - DistInfo
    device = resolve_device(cfg.runtime.device, info.local_rank if info.enabled else None)
    set_threads(cfg.runtime.threads)
    set_amp_mode(cfg.runtime.amp)
    torch.manual_seed(cfg.irn.seed)
    ds = load_dataset(cfg.data)
    paths = RunPaths.of(cfg)
    split = ir_split(cfg)
    ids = split_ids(ds, [split])
    labels = ItemFolder(paths.ir_labels, ".png")
    verify_items(labels, ids, what=f"IR labels of split '{split}'",
                 fix="run (or finish every shard of) `woodseg ir-labels` first; it resumes where it stopped")
    protocol = labels.read_protocol() or {}
    if tuple(protocol.get("classes", ds.class_names)) != tuple(ds.class_names):
        raise DataError(f"IR labels were made for classes {protocol.get('classes')}, the dataset has "
                        f"{list(ds.class_names)}", path=labels.index, fix="remake them: `woodseg ir-labels --restart`")
    section = cfg.irn
    b, world = section.batch_size, info.world
    steps_per_epoch = epoch_steps(len(ids), b, info, key="irn.batch_size", split=split)
    tcfg = TrainConfig(epochs=section.epochs, batch_size=b, lr=section.lr, seed=section.seed,
                       checkpoint_every=section.checkpoint_every, crop_size=section.crop_size)
    model, weights_file = build_irn(cfg)
    model.to(device)
    out = paths.irn
    record = stage_record("irn", {"irn": section.model_dump(mode="json"), "split": split, "world": world,
                                  "classes": list(ds.class_names)},
                          {"ir_labels": labels.index, "backbone_weights": weights_file})
    record_path = out / STAGE_RECORD
    old = read_record(record_path)
    ckpt = out / "last.pt"
    if not restart and old is not None and ckpt.exists() and old.get("config") == record["config"] \
            and changes(old, record):
        log.warning("%s: %s: training IRN again", out, "; ".join(changes(old, record)))
        restart = True
    barrier(info)
    runner: torch.nn.Module = model
    if info.enabled:
        runner = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    num_labels = ds.num_classes + 1
    engine = Engine(runner, model, irn_optimizer(model, tcfg), max_steps=section.epochs * steps_per_epoch,
                    steps_per_epoch=steps_per_epoch, out_dir=out, cfg=tcfg, run_fingerprint=record["fingerprint"],
                    dist=info, progress=progress, desc=f"irn {cfg.name}",
                    make_checkpoint=lambda: {"format": FORMAT, "model": model.state_dict(),
                                             "backbone": section.backbone, "class_names": list(ds.class_names),
                                             "radius": section.radius, "inputs": record["inputs"]})
    start, finished = engine.resume(restart)
    if info.is_main and old != record:
        atomic_write_json(record_path, record)
    if finished:
        log.info("%s is already trained; pass --restart to train again", ckpt)
        return ckpt
    if info.is_main:
        save_config(cfg, out / "config.yaml")
    data = IrLabelImages([ds.image_path(i) for i in ids], [labels.path(i) for i in ids], num_labels,
                         section.crop_size, tuple(section.scale_range), section.seed)
    sampler = StepBatchSampler(len(ids), b, seed=section.seed, stream="irn", start=start,
                               stop=engine.max_steps, rank=info.rank, world=world)
    loader = DataLoader(data, batch_sampler=sampler, collate_fn=_collate, num_workers=cfg.runtime.workers)

    def step_fn(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return irn_step(runner, {"img": batch["img"].to(device), "label": batch["label"].to(device)}, num_labels,
                        section.radius)

    engine.run(loader, step_fn, start)
    barrier(info)
    return ckpt


def load_irn(path: Path, class_names: tuple[str, ...], device: str | torch.device = "cpu") -> tuple[IRN, dict[str, Any]]:
    """A trained IRN from ``irn/last.pt`` (weights only), refused when it was trained for other classes."""
    state = load_checkpoint(path, what="IRN checkpoint", fix="train it first: `woodseg irn`")
    if state.get("format") != FORMAT:
        raise CheckpointError("not a woodseg IRN checkpoint", path=path, fix="train one with `woodseg irn`")
    if tuple(state.get("class_names", ())) != tuple(class_names):
        raise DataError(f"IRN was trained for classes {state.get('class_names')}, the dataset has "
                        f"{list(class_names)}", path=path, fix="train IRN on this dataset: `woodseg irn --restart`")
    if not state.get("finished", False):
        raise DataError("IRN training has not finished", path=path, fix="finish it: `woodseg irn` resumes")
    model = IRN(state["backbone"], None)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), {k: v for k, v in state.items() if k not in ("model", "optimizer")}
