"""The ``segmenter`` and ``predict`` stages: DeepLab-v2 on the run's pseudo masks (or ground truth), then
whole-image predictions of the judged splits.

``segmenter`` writes ``segmenter/last.pt`` (format ``woodseg.segmenter/1``: model state, class names,
backbone, MSC scales, labels source, optimizer, step) with ``metrics.jsonl``, ``config.yaml`` and
``stage.json`` (its settings and the content hash of every training mask). A changed mask set retrains;
an unchanged re-run skips; changed settings are refused (another ``out_dir`` or ``--restart``).

``predict`` writes ``predictions/<split>/<id>.png`` (and, with ``predict.crf``, ``predictions/<split>-crf/``)
through :func:`woodseg.runtime.driver.run_items`: resumable, exactly sharded, ``index.json`` holding the
protocol (split, scales, flip, fusion, CRF parameters) and the segmenter checkpoint's content hash.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from woodseg.config import Config, PredictConfig, TrainConfig, save_config
from woodseg.data.build import load_dataset
from woodseg.data.dataset import LabelledImageSet
from woodseg.data.images import image_size, load_image
from woodseg.data.palette import save_palette_png
from woodseg.errors import CheckpointError, ConfigError, DataError
from woodseg.fsutil import atomic_write_json
from woodseg.models.checkpoint import load_checkpoint
from woodseg.models.deeplab import MSC, build_deeplab
from woodseg.models.shipped import weights_file
from woodseg.refine.crf import CrfParams, crf_probs
from woodseg.runtime.amp import amp_dtype, set_amp_mode
from woodseg.runtime.device import resolve_device, set_threads, stage_device
from woodseg.runtime.driver import ItemFolder, check_protocol, clean_temporaries, plan_batches, run_items
from woodseg.runtime.fingerprint import changes, file_sha, fingerprint, read_record, stage_record
from woodseg.runtime.paths import STAGE_RECORD, RunPaths
from woodseg.runtime.shard import Shard
from woodseg.runtime.workers import WorkerPool
from woodseg.segment.data import MaskedImages, pair_loader, to_input
from woodseg.segment.predict import predict_probs
from woodseg.segment.train import train_deeplab
from woodseg.train.distributed import barrier, init_distributed, teardown
from woodseg.train.distributed import steps_per_epoch as epoch_steps

log = logging.getLogger(__name__)

SEGMENTER_FORMAT = "woodseg.segmenter/1"
# Keys that do not change the maths of a run: a resumed run may differ in them.
_RUNTIME_KEYS = {"checkpoint_every", "checkpoint_minutes", "log_every"}


# ---- inputs -------------------------------------------------------------------------------------------------

def segmenter_split(cfg: Config) -> str:
    return cfg.segmenter.split or cfg.data.train_split


def training_masks(cfg: Config, ds: LabelledImageSet, ids: list[str]) -> list[Path]:
    """The label file of every training image: the run's pseudo masks or the dataset's ground truth.

    Pseudo masks must come from a ``masks`` folder made for this class list (its ``index.json`` says
    which) and cover every image of the split.
    """
    split = segmenter_split(cfg)
    if cfg.segmenter.labels == "gt":
        ds.check_split(split, need_masks=True)
        return [ds.mask_path(i) for i in ids]  # type: ignore[misc]
    folder = ItemFolder(RunPaths.of(cfg).masks, ".png")
    protocol = folder.read_protocol()
    if protocol is None:
        raise DataError("no pseudo masks here (masks/index.json is missing)", path=folder.folder,
                        fix="run `woodseg masks` first, or set segmenter.labels=gt for the fully supervised reference")
    classes = protocol.get("classes")
    if classes is not None and list(classes) != list(ds.class_names):
        raise DataError(f"the pseudo masks were made for classes {list(classes)}, the dataset has "
                        f"{list(ds.class_names)}", path=folder.index,
                        fix="remake the masks for this dataset (woodseg masks --restart) or use its own out_dir")
    missing = [i for i in ids if not folder.path(i).is_file()]
    if missing:
        raise DataError(f"{len(missing)} of {len(ids)} images of split '{split}' have no pseudo mask "
                        f"(first: {missing[:5]})", path=folder.folder,
                        fix="make masks for that split (run every shard of `woodseg masks`), or set segmenter.split")
    return [folder.path(i) for i in ids]


def labels_fingerprint(paths: list[Path]) -> str:
    """One hash of every training mask's content (files are hashed once per process)."""
    return fingerprint([file_sha(p) for p in paths])




# ---- the segmenter stage -------------------------------------------------------------------------------------

def segmenter_stage(cfg: Config, *, restart: bool = False, progress: bool = True) -> Path:
    """Train (or resume, or skip) DeepLab-v2 on the configured labels; returns ``segmenter/last.pt``.

    Under torchrun every process takes its slice of the global batch (DDP); the global batch is
    ``segmenter.batch_size`` whatever the process count.
    """
    info = init_distributed(cfg.runtime.device)
    try:
        return _train(cfg, info, restart, progress)
    finally:
        teardown(info)


def _train(cfg: Config, info: Any, restart: bool, progress: bool) -> Path:
    s = cfg.segmenter
    device = resolve_device(cfg.runtime.device, info.local_rank if info.enabled else None)
    set_threads(cfg.runtime.threads)
    set_amp_mode(cfg.runtime.amp)
    torch.manual_seed(s.seed)
    out = RunPaths.of(cfg).segmenter
    ds = load_dataset(cfg.data)
    split = segmenter_split(cfg)
    ids = ds.check_split(split)
    masks = training_masks(cfg, ds, ids)

    world, b = info.world, s.batch_size
    steps_per_epoch = epoch_steps(len(ids), b, info, key="segmenter.batch_size", split=split)
    max_steps = s.iterations if s.iterations is not None else s.epochs * steps_per_epoch  # type: ignore[operator]
    settings = {"segmenter": s.model_dump(mode="json", exclude=_RUNTIME_KEYS), "split": split,
                "classes": list(ds.class_names)}
    run_fp = fingerprint(settings)
    record = stage_record("segmenter", {"settings": run_fp}, {"weights": weights_file(s.weights, s.backbone)},
                          {"labels": labels_fingerprint(masks), "dataset": ds.fingerprint(split)})
    ckpt = out / "last.pt"
    if not restart and ckpt.is_file():
        # The checkpoint says what it was made from: same settings but other masks (or weights) -> train again.
        made = load_checkpoint(ckpt, what="segmenter checkpoint")
        if made.get("run_fingerprint") == run_fp and made.get("record") != record["fingerprint"]:
            old = read_record(out / STAGE_RECORD) or {}
            why = "; ".join(changes(old, record)) or "its inputs changed"
            log.warning("%s: %s: training again", out, why)
            restart = True
    barrier(info)  # every process decides before the main one rewrites anything

    model = build_deeplab(ds.num_classes + 1, s.backbone, s.weights, s.msc_scales, s.freeze_bn).to(device)
    if s.channels_last:
        model = model.to(memory_format=torch.channels_last)
    runner: torch.nn.Module = model
    if info.enabled:
        runner = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    tcfg = TrainConfig(epochs=1, batch_size=b, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay,
                       poly_power=s.poly_power, seed=s.seed, checkpoint_every=s.checkpoint_every,
                       checkpoint_minutes=s.checkpoint_minutes, log_every=s.log_every)
    extra = {"format": SEGMENTER_FORMAT, "classes": list(ds.class_names), "backbone": s.backbone,
             "msc_scales": list(s.msc_scales), "freeze_bn": s.freeze_bn, "labels": s.labels, "split": split,
             "record": record["fingerprint"], "inputs": record["inputs"]}
    if info.is_main and s.freeze_bn and s.weights is None:
        log.warning("segmenter.freeze_bn with a random backbone keeps BatchNorm at its initial statistics "
                    "(mean 0, variance 1), which usually diverges; set segmenter.freeze_bn=false or give weights")
    if info.is_main:
        log.info("segmenter: %s on %d images of '%s' (%s labels), %d steps%s", s.backbone, len(ids), split, s.labels,
                 max_steps, "" if b >= 10 else " (deeplab-pytorch's batch: 10 = 5 x 2 accumulated; this engine does "
                 "not accumulate)")
    dataset = MaskedImages([ds.image_path(i) for i in ids], masks, ds.num_classes + 1, crop=s.crop_size,
                           scales=s.scales, seed=s.seed, skip_bad=cfg.data.on_bad_image == "skip")

    def batches(start: int) -> Any:
        return pair_loader(dataset, b, seed=s.seed, start=start, stop=max_steps, rank=info.rank, world=world,
                           num_workers=cfg.runtime.workers)

    train_deeplab(model, batches, cfg=tcfg, max_steps=max_steps, steps_per_epoch=steps_per_epoch, out_dir=out,
                  run_fingerprint=run_fp, extra=extra, runner=runner, dist=info, restart=restart, progress=progress,
                  lr_mults=(s.aspp_weight_lr_mult, s.aspp_bias_lr_mult), channels_last=s.channels_last,
                  desc=f"segmenter {cfg.name} [global batch {b}]")
    if info.is_main:
        if read_record(out / STAGE_RECORD) != record:
            atomic_write_json(out / STAGE_RECORD, record)
        save_config(cfg, out / "config.yaml")
    barrier(info)
    return ckpt


# ---- loading a trained segmenter -----------------------------------------------------------------------------

def load_segmenter(path: Path, device: str | torch.device = "cpu", *, finished: bool = True
                   ) -> tuple[MSC, tuple[str, ...], dict[str, Any]]:
    """(eval-mode model, class names, metadata) of a ``segmenter/last.pt``; refuses other files and, with
    ``finished``, a training run that has not reached its last step."""
    fix = "run `woodseg segmenter` first (it writes out_dir/segmenter/last.pt)"
    state = load_checkpoint(path, what="segmenter checkpoint", fix=fix)
    if state.get("format") != SEGMENTER_FORMAT:
        raise CheckpointError(f"{path} is not a woodseg segmenter checkpoint (format {state.get('format')!r})",
                              path=path, fix=fix)
    if finished and not state.get("finished", False):
        raise CheckpointError(f"segmenter training stopped at step {state.get('step')}/{state.get('max_steps')}",
                              path=path, fix="run `woodseg segmenter` again: it resumes and finishes")
    names = tuple(state["classes"])
    model = build_deeplab(len(names) + 1, state["backbone"], None, state["msc_scales"], state["freeze_bn"])
    model.load_state_dict(state["model"])
    meta = {k: v for k, v in state.items() if k not in ("model", "optimizer", "scaler")}
    return model.to(device).eval(), names, meta


# ---- the predict stage ---------------------------------------------------------------------------------------

def predict_splits(cfg: Config) -> list[str]:
    if cfg.predict.splits:
        return list(cfg.predict.splits)
    return [cfg.data.heldout_split or cfg.data.seed_split]


def crf_params(p: PredictConfig) -> CrfParams:
    return CrfParams(iterations=p.crf_iterations, gauss_sxy=p.crf_gauss_sxy, gauss_compat=p.crf_gauss_compat,
                     bi_sxy=p.crf_bi_sxy, bi_srgb=p.crf_bi_srgb, bi_compat=p.crf_bi_compat)


def crf_workers(p: PredictConfig) -> int:
    """``predict.crf_processes``, else the CPU cores shared among the torchrun processes of this machine."""
    if p.crf_processes:
        return p.crf_processes
    return max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def _crf_labels(job: tuple[np.ndarray, np.ndarray, CrfParams]) -> np.ndarray:
    """One image's CRF-refined labels (module level: it runs in worker processes)."""
    image, probs, params = job
    # pydensecrf needs a writable buffer; decoded images (np.asarray of a PIL image) are read-only
    return crf_probs(np.require(image, np.uint8, ["C", "W"]), probs, params).argmax(0).astype(np.uint8)


def predict_stage(cfg: Config, *, checkpoint: Path | None = None, restart: bool = False, progress: bool = True,
                  shard: Shard | None = None) -> list[Path]:
    """Write this shard's predictions for every configured split; returns the folders written.

    With ``predict.crf`` one network pass per image feeds both folders: the plain label map is written
    to ``predictions/<split>/`` and the CRF-refined one (worker processes over each batch) to
    ``predictions/<split>-crf/``.
    """
    p = cfg.predict
    shard = shard or Shard.resolve()
    device = stage_device(cfg.runtime.device, cfg.runtime.threads)
    set_amp_mode(cfg.runtime.amp)
    paths = RunPaths.of(cfg)
    ckpt = Path(checkpoint) if checkpoint else paths.segmenter / "last.pt"
    model, names, meta = load_segmenter(ckpt, device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    ds = load_dataset(cfg.data)
    if tuple(names) != ds.class_names:
        raise ConfigError(f"{ckpt} was trained on classes {list(names)}, the dataset has {list(ds.class_names)}",
                          path=ckpt, fix="use the segmenter trained on this dataset (its own out_dir)")
    dtype = amp_dtype(device)
    inputs = {"segmenter": file_sha(ckpt)}
    written = []
    for split in predict_splits(cfg):
        protocol = {"split": split, "checkpoint": str(ckpt), "classes": list(names), "scales": list(p.scales),
                    "flip": p.flip, "fuse": p.fuse, "batch_size": p.batch_size,
                    "precision": str(dtype).removeprefix("torch.") if dtype else "float32",
                    "labels": meta.get("labels"), "crf": None}
        written += _predict_split(model, ds, ds.check_split(split), paths, p, protocol, inputs, device, shard,
                                  restart, progress, cfg.data.on_bad_image)
    if shard.index == 0:
        save_config(cfg, paths.root / "predictions" / "config.yaml")
    return written


def _predict_split(model: MSC, ds: LabelledImageSet, ids: list[str], paths: RunPaths, p: PredictConfig,
                   protocol: dict[str, Any], inputs: dict[str, Any], device: torch.device, shard: Shard,
                   restart: bool, progress: bool, on_bad: Any) -> list[Path]:
    split = protocol["split"]
    plain = ItemFolder(paths.predictions(split), ".png")

    def key(i: str) -> tuple[int, int]:
        return image_size(ds.image_path(i))

    def load(i: str) -> np.ndarray:
        return load_image(ds.image_path(i))

    def network(batch: list[tuple[str, np.ndarray]]) -> list[np.ndarray]:
        return [predict_probs(model, to_input(im).to(device), p.scales, p.flip, p.fuse).cpu().numpy()
                for _, im in batch]

    def plain_labels(batch: list[tuple[str, np.ndarray]]) -> list[np.ndarray]:
        return [pr.argmax(0).astype(np.uint8) for pr in network(batch)]

    common: dict[str, Any] = dict(inputs=inputs, key=key, load=load, write=save_palette_png,
                                  batch_size=p.batch_size, shard=shard, on_bad_image=on_bad, progress=progress)
    folders = [plain.folder]
    if p.crf:
        # The plain folder is checked (and this shard's stale files removed) first; the CRF pass then writes
        # the plain label maps from the same network output.
        plan, _ = plan_batches(list(dict.fromkeys(ids)), key, p.batch_size, on_bad)
        own = [i for batch in shard.take(plan) for i in batch]
        check_protocol(plain, protocol, restart=restart, own_ids=own, shard=shard, inputs=inputs)
        clean_temporaries(plain, own)
        params = crf_params(p)

        def refined(batch: list[tuple[str, np.ndarray]]) -> list[np.ndarray]:
            probs = network(batch)
            for (i, _), pr in zip(batch, probs, strict=True):
                if not plain.path(i).exists():
                    save_palette_png(plain.path(i), pr.argmax(0).astype(np.uint8))
            jobs = [(im, pr, params) for (_, im), pr in zip(batch, probs, strict=True)]
            return pool.map(_crf_labels, jobs)

        crf_folder = ItemFolder(paths.predictions(split, crf=True), ".png")
        with WorkerPool(crf_workers(p)) as pool:
            run_items(crf_folder, ids, protocol={**protocol, "crf": asdict(params)}, compute=refined,
                      restart=restart, desc=f"predict {split} + CRF", **common)
        folders.append(crf_folder.folder)
    # every plain map the CRF pass did not write (all of them without CRF)
    run_items(plain, ids, protocol=protocol, compute=plain_labels, restart=restart and not p.crf,
              desc=f"predict {split}", **common)
    return folders
