"""The ``masks`` stage: IRN's boundary map and a random walk of the seeds -> ``masks/<id>.png`` pseudo masks.

For every image of ``walk.splits`` (default: ``data.train_split``, which DeepLab trains on, and
``data.seed_split``, which judges the masks) the trained IRN gives the stride-4 boundary map (image and
mirror, :func:`woodseg.models.irn.infer_edge`), and the memory-linear random walk
(:func:`woodseg.refine.random_walk.pseudo_mask`) turns the seed's stride-4 CAM into VOC label indices.
Per-image driver: resumable, sharded, ``--restart`` of this shard only; the walk settings are the folder's
protocol, the content hashes of ``seeds/index.json`` and ``irn/last.pt`` its inputs.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from woodseg.config import Config, WalkConfig, save_config
from woodseg.data.build import load_dataset
from woodseg.data.images import image_size, load_image
from woodseg.data.palette import save_palette_png
from woodseg.data.transforms import hwc_to_tensor, normalize
from woodseg.models.irn import infer_edge
from woodseg.refine.inputs import check_seed_folder, load_checked_seed, split_ids
from woodseg.refine.irn_stage import load_irn
from woodseg.refine.random_walk import WALK_SETTINGS, WalkParams, pseudo_mask
from woodseg.runtime.device import stage_device
from woodseg.runtime.driver import ItemFolder, run_items
from woodseg.runtime.fingerprint import file_sha
from woodseg.runtime.paths import INDEX, RunPaths
from woodseg.runtime.shard import Shard
from woodseg.runtime.workers import WorkerPool

BATCH = 4  # images whose walks go to the worker processes at once; the masks do not depend on it


def walk_params(section: WalkConfig) -> WalkParams:
    """The preset's settings with every explicitly set key put over them."""
    base = asdict(WALK_SETTINGS[section.preset])
    keys = ("beta", "exp_times", "radius", "seed_power", "bg_threshold")
    return WalkParams(**{k: base[k] if getattr(section, k) is None else getattr(section, k) for k in keys})


def mask_splits(cfg: Config) -> list[str]:
    if cfg.walk.splits:
        return list(cfg.walk.splits)
    return list(dict.fromkeys([cfg.data.train_split, cfg.data.seed_split]))


def _walk(args: tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int], WalkParams]) -> np.ndarray:
    cam, keys, edge, size, params = args
    return pseudo_mask(cam, keys, edge, size, params)


def masks_stage(cfg: Config, *, restart: bool = False, progress: bool = True, shard: Shard | None = None,
                seed_dir: Path | None = None, irn_checkpoint: Path | None = None) -> Path:
    """Make this shard's pseudo masks; returns the folder."""
    device = stage_device(cfg.runtime.device, cfg.runtime.threads)
    ds = load_dataset(cfg.data)
    paths = RunPaths.of(cfg)
    seed_dir = Path(seed_dir) if seed_dir else paths.seeds
    ckpt = Path(irn_checkpoint) if irn_checkpoint else paths.irn / "last.pt"
    splits = mask_splits(cfg)
    ids = split_ids(ds, splits)
    index = check_seed_folder(seed_dir, ds, ids, f"splits {splits} (walk.splits)")
    model, meta = load_irn(ckpt, ds.class_names, device)
    params = walk_params(cfg.walk)
    protocol = {"what": "pseudo masks (IRN random walk; 0 background, c+1 class c)", "splits": splits,
                "preset": cfg.walk.preset, **asdict(params), "edge_pad": cfg.walk.edge_pad,
                "irn_backbone": meta.get("backbone"), "classes": list(ds.class_names),
                "seed_method": index.get("method"), "batch_size": BATCH}  # the seeds and IRN: by content, in inputs

    def load(image_id: str) -> tuple[np.ndarray, Any]:
        image = load_image(ds.image_path(image_id))
        return image, load_checked_seed(seed_dir, image_id, image.shape[:2])

    def compute(batch: list[tuple[str, tuple[np.ndarray, Any]]]) -> list[np.ndarray]:
        work = []
        for _, (image, seed) in batch:
            x = hwc_to_tensor(normalize(image)).to(device)
            edge = infer_edge(model, x, pad_to=cfg.walk.edge_pad)
            work.append((seed.cam.astype(np.float32), seed.keys, edge, image.shape[:2], params))
        return pool.map(_walk, work)

    out = paths.masks
    with WorkerPool(cfg.runtime.refine_processes) as pool:
        run_items(ItemFolder(out, ".png"), ids, protocol=protocol,
                  inputs={"seeds": file_sha(seed_dir / INDEX), "irn": file_sha(ckpt)},
                  key=lambda i: image_size(ds.image_path(i)), load=load, compute=compute, write=save_palette_png,
                  batch_size=BATCH, shard=shard or Shard.resolve(), restart=restart,
                  on_bad_image=cfg.data.on_bad_image, progress=progress, desc="masks")
    save_config(cfg, out / "config.yaml")
    return out

