"""The ``ir_labels`` stage: IR labels (confident foreground / background, 255 between) from the seeds.

Writes ``ir_labels/<id>.png`` (palette PNG of VOC indices) for the IRN training split (``ir_labels.split``,
default ``data.train_split``) through the per-image driver: resumable, sharded (``--shard i/n`` or torchrun),
``--restart`` of this shard only. The thresholds, CRF switch and class list are the folder's protocol; the
content hash of ``seeds/index.json`` is its input, so remade seeds remake the IR labels.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from woodseg.config import Config, IrLabelsConfig, save_config
from woodseg.data.build import load_dataset
from woodseg.data.images import image_size, load_image
from woodseg.data.palette import save_palette_png
from woodseg.refine.crf import LABEL_CRF
from woodseg.refine.inputs import check_seed_folder, load_checked_seed, split_ids
from woodseg.refine.ir_labels import IR_THRESHOLDS, IrThresholds, ir_labels
from woodseg.runtime.driver import ItemFolder, run_items
from woodseg.runtime.fingerprint import file_sha
from woodseg.runtime.paths import INDEX, RunPaths
from woodseg.runtime.shard import Shard
from woodseg.runtime.workers import WorkerPool

BATCH = 8  # images handed to the CRF processes at once; the labels do not depend on it


def ir_thresholds(section: IrLabelsConfig) -> IrThresholds:
    """The preset's thresholds with any explicit ``fg`` / ``bg`` put over them."""
    base = IR_THRESHOLDS[section.preset]
    try:
        return IrThresholds(fg=base.fg if section.fg is None else section.fg,
                            bg=base.bg if section.bg is None else section.bg)
    except ValueError as exc:
        from woodseg.errors import ConfigError

        raise ConfigError(f"ir_labels: {exc}", fix="set ir_labels.bg <= ir_labels.fg") from None


def ir_split(cfg: Config) -> str:
    return cfg.ir_labels.split or cfg.data.train_split


def _one(args: tuple[np.ndarray, np.ndarray, np.ndarray, IrThresholds, bool]) -> np.ndarray:
    image, high_res, keys, thresholds, crf = args
    return ir_labels(image, high_res.astype(np.float32), keys, thresholds, crf=crf)


def ir_labels_stage(cfg: Config, *, restart: bool = False, progress: bool = True, shard: Shard | None = None,
                    seed_dir: Path | None = None) -> Path:
    """Make this shard's IR labels; returns the folder."""
    ds = load_dataset(cfg.data)
    paths = RunPaths.of(cfg)
    seed_dir = Path(seed_dir) if seed_dir else paths.seeds
    split = ir_split(cfg)
    ids = split_ids(ds, [split])
    index = check_seed_folder(seed_dir, ds, ids, f"split '{split}' (ir_labels.split)")
    thresholds = ir_thresholds(cfg.ir_labels)
    protocol = {"what": "IR labels (0 background, c+1 class c, 255 uncertain)", "split": split,
                "preset": cfg.ir_labels.preset, "fg": thresholds.fg, "bg": thresholds.bg, "crf": cfg.ir_labels.crf,
                "crf_params": asdict(LABEL_CRF) if cfg.ir_labels.crf else None, "classes": list(ds.class_names),
                "seed_method": index.get("method"), "batch_size": BATCH}  # the seeds: by content, in inputs

    def load(image_id: str) -> tuple[np.ndarray, Any]:
        image = load_image(ds.image_path(image_id))
        return image, load_checked_seed(seed_dir, image_id, image.shape[:2])

    def compute(batch: list[tuple[str, tuple[np.ndarray, Any]]]) -> list[np.ndarray]:
        work = [(im, seed.high_res, seed.keys, thresholds, cfg.ir_labels.crf) for _, (im, seed) in batch]
        return pool.map(_one, work)

    out = paths.ir_labels
    with WorkerPool(cfg.runtime.refine_processes) as pool:
        run_items(ItemFolder(out, ".png"), ids, protocol=protocol, inputs={"seeds": file_sha(seed_dir / INDEX)},
                  key=lambda i: image_size(ds.image_path(i)), load=load, compute=compute, write=save_palette_png,
                  batch_size=BATCH, shard=shard or Shard.resolve(), restart=restart,
                  on_bad_image=cfg.data.on_bad_image, progress=progress, desc="ir_labels")
    save_config(cfg, out / "config.yaml")
    return out
