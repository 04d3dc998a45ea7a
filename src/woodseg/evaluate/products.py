"""The ``eval_masks`` and ``eval_predictions`` stages: pseudo masks, seed + CRF and predictions judged
with the seeds' metric code, each number with its protocol record.

* ``eval/masks.json``: the masks of the judged splits (the seed split, and the held-out split when masks
  were made for it), per split {protocol, scores with per-class IoU / P / R}.
* ``eval/seeds-crf.json``: the paper's Table 2 "+CRF" column. Its protocol is in no public repository;
  ours (:func:`woodseg.refine.crf.seed_crf_labels`): each seed's label map at the threshold the seed
  evaluation chose (``eval/seeds.json``, best mIoU on the seed split) refined by the label-unary dense CRF.
* ``eval/predictions-<split>[-crf].json``: every ``predictions/<split>[-crf]/`` folder whose split has masks.

Each output has a ``.record.json`` (what it was made from: the content of the folder's ``index.json``), so an
unchanged re-run only prints the stored table. These are whole-split sums of small confusions: under
torchrun or ``--shard`` only shard 0 computes them (after the stage barrier every mask exists).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from tqdm import tqdm

from woodseg.config import Config
from woodseg.data.build import load_dataset
from woodseg.data.dataset import LabelledImageSet
from woodseg.data.images import load_image, load_mask
from woodseg.errors import DataError
from woodseg.evaluate.labels import class_scores, evaluate_folder, image_confusion, print_label_table
from woodseg.evaluate.seeds import seed_protocol
from woodseg.fsutil import atomic_write_json
from woodseg.refine.crf import LABEL_CRF, seed_crf_labels
from woodseg.refine.inputs import check_seed_folder, load_checked_seed
from woodseg.runtime.driver import ItemFolder
from woodseg.runtime.fingerprint import read_record, stage_record
from woodseg.runtime.paths import INDEX, RunPaths
from woodseg.runtime.shard import Shard
from woodseg.runtime.workers import WorkerPool

log = logging.getLogger(__name__)

CHUNK = 32  # images held in memory at once for the CRF processes


def _fresh(out: Path, record_path: Path, record: dict[str, Any], restart: bool) -> dict[str, Any] | None:
    """The stored result when it was made from the same inputs, else None."""
    old = read_record(record_path)
    if restart or old is None or old.get("fingerprint") != record["fingerprint"] or not out.is_file():
        return None
    return json.loads(out.read_text(encoding="utf-8"))


def _save(out: Path, record_path: Path, record: dict[str, Any], results: dict[str, Any]) -> None:
    atomic_write_json(out, results)
    atomic_write_json(record_path, record)


def mask_judged_splits(cfg: Config, ds: LabelledImageSet, made_for: list[str]) -> list[str]:
    """The seed split, then the held-out split when masks were made for it and it has ground truth."""
    seed_split, held = cfg.data.seed_split, cfg.data.heldout_split
    if seed_split not in made_for:
        raise DataError(f"the masks were made for splits {made_for}, not the seed split '{seed_split}'",
                        path=RunPaths.of(cfg).masks / INDEX,
                        fix=f"add {seed_split} to walk.splits and run `woodseg masks` again (it resumes)")
    return [seed_split, *([held] if held and held in made_for and ds.has_masks(held) else [])]


def _seed_crf(args: tuple[str, Path, Path, Path, float]) -> tuple[np.ndarray, np.ndarray, Path, Path]:
    """(seed + CRF labels, mask, seed path, mask path) of one image; runs in a worker process."""
    image_id, image_path, seed_dir, mask_path, threshold = args
    image = load_image(image_path)
    seed = load_checked_seed(seed_dir, image_id, image.shape[:2])
    labels = seed_crf_labels(image, seed.high_res.astype(np.float32), seed.keys, threshold)
    return labels, load_mask(mask_path), seed_dir / f"{image_id}.npz", mask_path


def seed_crf_result(cfg: Config, ds: LabelledImageSet, seed_dir: Path, threshold: float, progress: bool = False
                    ) -> dict[str, Any]:
    """Seed + CRF on the seed split at ``threshold``: {"protocol", "scores"}."""
    split = cfg.data.seed_split
    ids = ds.check_split(split, need_masks=True)
    check_seed_folder(seed_dir, ds, ids, f"split '{split}'")
    n = ds.num_classes + 1
    total = np.zeros((n, n), dtype=np.int64)
    with WorkerPool(cfg.runtime.refine_processes) as pool:
        for k in tqdm(range(0, len(ids), CHUNK), desc=f"seed+CRF {split}", disable=not progress, leave=False):
            work = [(i, ds.image_path(i), seed_dir, ds.mask_path(i), threshold) for i in ids[k:k + CHUNK]]
            for pred, gt, seed_path, mask_path in pool.map(_seed_crf, work):
                total += image_confusion(gt, pred, n, mask_path, seed_path)
    protocol = seed_protocol(ds, split, seed_dir, len(ids),
                             f"threshold {threshold:g}: the best of eval/seeds.json on split {split}",
                             {"crf": True, "what": "seed + CRF (label-unary dense CRF of the thresholded seed)",
                              "threshold": threshold, "crf_params": asdict(LABEL_CRF)})
    return {"protocol": protocol, "scores": class_scores(total, ["background", *ds.class_names])}


def eval_masks_stage(cfg: Config, *, restart: bool = False, progress: bool = True, console: Console | None = None,
                     shard: Shard | None = None, **_: Any) -> dict[str, Any] | None:
    """Write ``eval/masks.json`` and ``eval/seeds-crf.json``; print the Table 2 row (Seed, +CRF, Mask)."""
    shard = shard or Shard.resolve()
    if shard.index != 0:
        return None
    ds = load_dataset(cfg.data)
    paths = RunPaths.of(cfg)
    masks = ItemFolder(paths.masks, ".png")
    made = masks.read_protocol()
    if made is None:
        raise DataError("no pseudo masks yet", path=paths.masks, fix="run `woodseg masks` first")
    splits = mask_judged_splits(cfg, ds, list(made.get("splits", [])))
    out, record_path = paths.eval("masks"), paths.eval("masks.record")
    record = stage_record("eval-masks", {"splits": splits}, {"masks": masks.index})
    results = _fresh(out, record_path, record, restart)
    if results is None:
        results = {"run": cfg.name}
        for split in splits:
            results[split] = evaluate_folder(ds, split, paths.masks, what="pseudo masks", crf=False,
                                             progress=progress)
        _save(out, record_path, record, results)

    seeds_eval = paths.eval("seeds")
    if not seeds_eval.is_file():
        raise DataError("the seed evaluation is missing (+CRF uses its best threshold)", path=seeds_eval,
                        fix="run `woodseg eval` first")
    seed_results = json.loads(seeds_eval.read_text(encoding="utf-8"))
    main = seed_results.get(cfg.data.seed_split)
    if main is None:
        raise DataError(f"{seeds_eval.name} has no split '{cfg.data.seed_split}'", path=seeds_eval,
                        fix="run `woodseg eval --restart` with this config")
    threshold = float(main["best"]["threshold"])
    crf_out, crf_record_path = paths.eval("seeds-crf"), paths.eval("seeds-crf.record")
    crf_record = stage_record("eval-seeds-crf", {"threshold": threshold, "split": cfg.data.seed_split,
                                                 "crf": asdict(LABEL_CRF)},
                              {"seeds": paths.seeds / INDEX, "seed_eval": seeds_eval})
    crf = _fresh(crf_out, crf_record_path, crf_record, restart)
    if crf is None:
        crf = {"run": cfg.name, cfg.data.seed_split: seed_crf_result(cfg, ds, paths.seeds, threshold, progress)}
        _save(crf_out, crf_record_path, crf_record, crf)

    split = cfg.data.seed_split
    seed_row = {"protocol": {**main["protocol"], "what": "seed"}, "scores": main["best"]}
    print_label_table(f"{cfg.name}: Table 2 row on split '{split}' (%)",
                      {"Seed": seed_row, "+CRF": crf[split], "Mask": results[split]}, console)
    return {"masks": results, "seeds_crf": crf}


def eval_predictions_stage(cfg: Config, *, restart: bool = False, progress: bool = True,
                           console: Console | None = None, shard: Shard | None = None, **_: Any
                           ) -> dict[str, Any] | None:
    """Judge every ``predictions/<split>[-crf]/`` whose split has masks; write ``eval/predictions-<name>.json``."""
    shard = shard or Shard.resolve()
    if shard.index != 0:
        return None
    ds = load_dataset(cfg.data)
    paths = RunPaths.of(cfg)
    root = paths.root / "predictions"
    folders = sorted(p for p in root.iterdir() if (p / INDEX).is_file()) if root.is_dir() else []
    if not folders:
        raise DataError("no predictions yet", path=root, fix="run `woodseg predict` first")
    done: dict[str, Any] = {}
    for folder in folders:
        index = json.loads((folder / INDEX).read_text(encoding="utf-8"))
        split = folder.name.removesuffix("-crf")
        if split not in ds.splits or not ds.has_masks(split):
            log.warning("%s: split '%s' has no pixel masks here; not judged", folder, split)
            continue
        crf = bool(index.get("crf", folder.name.endswith("-crf")))
        product = f"predictions-{folder.name}"
        out, record_path = paths.eval(product), paths.eval(f"{product}.record")
        record = stage_record("eval-predictions", {"split": split, "crf": crf}, {"predictions": folder / INDEX})
        res = _fresh(out, record_path, record, restart)
        if res is None:
            res = {"run": cfg.name, split: evaluate_folder(ds, split, folder, what="segmentation predictions",
                                                           crf=crf, progress=progress)}
            _save(out, record_path, record, res)
        done[folder.name] = res[split]
    if not done:
        raise DataError("no prediction folder is of a split with pixel masks", path=root,
                        fix="predict a split that has masks (e.g. data.heldout_split)")
    print_label_table(f"{cfg.name}: segmentation (%)", done, console)
    return done
