"""The ``eval`` stage: judge the seeds on the seed split (and held-out split) and write ``eval/seeds.json``.

What the evaluation was made from (thresholds, splits, the seed folder's ``index.json`` content) is kept in
``eval/seeds.record.json``: an unchanged re-run only prints the stored table, remade seeds re-evaluate.
Sharded (``--shard i/n`` or torchrun): each shard sums its images' confusions into
``eval/parts/seeds/<split>/<shard>.npz``; the shard that finds every part merges them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from woodseg.config import Config, save_config
from woodseg.data.build import load_dataset
from woodseg.data.dataset import LabelledImageSet
from woodseg.evaluate.seeds import curve_rows, describe, evaluate_seeds, row_at, seed_protocol
from woodseg.fsutil import atomic_save, atomic_write_json
from woodseg.runtime.driver import ItemFolder, verify_items
from woodseg.runtime.fingerprint import read_record, stage_record
from woodseg.runtime.paths import INDEX, RunPaths
from woodseg.runtime.shard import Shard
from woodseg.seeds.stage import cam_splits


def judged_splits(cfg: Config, ds: LabelledImageSet) -> list[str]:
    """The seed split, then the held-out split when it has seeds and masks."""
    held = cfg.data.heldout_split
    extra = [held] if held and held in cam_splits(cfg) and held in ds.splits and ds.has_masks(held) else []
    return [cfg.data.seed_split, *extra]


def eval_stage(cfg: Config, *, seed_dir: Path | None = None, extra_protocol: dict[str, Any] | None = None,
               progress: bool = True, console: Console | None = None, shard: Shard | None = None,
               restart: bool = False) -> dict[str, Any] | None:
    """Sweep thresholds on the seed split, pick the best, apply it to the held-out split; save and print.

    Returns the results, or None when this shard's part is written and other shards are still missing.
    """
    shard = shard or Shard.resolve()
    ds = load_dataset(cfg.data)
    paths = RunPaths.of(cfg)
    seed_dir = Path(seed_dir) if seed_dir else paths.seeds
    out, record_path = paths.eval("seeds"), paths.eval("seeds.record")
    splits = judged_splits(cfg, ds)
    thresholds = list(cfg.eval.thresholds)
    if cfg.eval.fixed_threshold is not None:
        thresholds.append(cfg.eval.fixed_threshold)
    split_ids = {s: ds.check_split(s, need_masks=True) for s in splits}
    for s, ids in split_ids.items():
        verify_items(ItemFolder(seed_dir), ids, what=f"seeds of split '{s}'",
                     fix="run (or finish every shard of) `woodseg cam` first; it resumes where it stopped")
    record = stage_record("eval-seeds", {"thresholds": thresholds, "fixed_threshold": cfg.eval.fixed_threshold,
                                         "splits": splits, "seed_dir": str(seed_dir), "extra": extra_protocol},
                          {"seeds": seed_dir / INDEX})
    old = read_record(record_path)
    if not restart and old is not None and old["fingerprint"] == record["fingerprint"] and out.is_file():
        results = json.loads(out.read_text(encoding="utf-8"))
        print_seed_table({cfg.name: results}, console)
        return results

    sums: dict[str, dict[str, Any]] = {}
    for s in splits:
        own = shard.take(split_ids[s])
        res = evaluate_seeds(ds, s, seed_dir, thresholds, progress, ids=own)
        if shard.whole:
            sums[s] = res
            continue
        part = paths.root / "eval" / "parts" / "seeds" / s / f"{shard.name}.npz"
        atomic_save(part, lambda fh, res=res, n=len(own): np.savez(fh, confusions=res["confusions"], thresholds=res["thresholds"],
                                                                   n=n, record=record["fingerprint"]))
    if not shard.whole:
        sums = _merge_parts(paths, splits, shard.count, record["fingerprint"])
        if sums is None:
            return None
    results = _results(cfg, ds, seed_dir, sums, {s: len(v) for s, v in split_ids.items()}, extra_protocol)
    atomic_write_json(out, results)
    atomic_write_json(record_path, record)
    save_config(cfg, out.parent / "config.yaml")
    print_seed_table({cfg.name: results}, console)
    return results


def _merge_parts(paths: RunPaths, splits: list[str], count: int, fp: str) -> dict[str, dict[str, Any]] | None:
    """Summed confusions of every shard's part, or None while a part is missing or from other inputs."""
    sums: dict[str, dict[str, Any]] = {}
    for s in splits:
        total = thr = None
        for i in range(count):
            part = paths.root / "eval" / "parts" / "seeds" / s / f"{Shard(i, count).name}.npz"
            if not part.is_file():
                return None
            with np.load(part, allow_pickle=False) as z:
                if str(z["record"]) != fp:
                    return None
                total = z["confusions"] if total is None else total + z["confusions"]
                thr = z["thresholds"]
        sums[s] = {"thresholds": thr, "confusions": total}
    return sums


def _results(cfg: Config, ds: LabelledImageSet, seed_dir: Path, sums: dict[str, dict[str, Any]],
             counts: dict[str, int], extra_protocol: dict[str, Any] | None) -> dict[str, Any]:
    labels = ["background", *ds.class_names]
    results: dict[str, Any] = {"run": cfg.name}
    main_split = cfg.data.seed_split
    main = sums[main_split]
    curve = curve_rows(main["thresholds"], main["confusions"])
    best_t = max(curve, key=lambda r: r["miou"])["threshold"]
    sel = f"best mIoU over {len(curve)} thresholds on split {main_split}"
    results[main_split] = {
        "protocol": seed_protocol(ds, main_split, seed_dir, counts[main_split], sel, extra_protocol),
        "curve": curve,
        "best": row_at(main["thresholds"], main["confusions"], best_t, labels),
    }
    if cfg.eval.fixed_threshold is not None:
        results[main_split]["fixed"] = row_at(main["thresholds"], main["confusions"], cfg.eval.fixed_threshold, labels)
    for held in [s for s in sums if s != main_split]:
        ho = sums[held]
        sel_h = f"fixed at the best threshold of split {main_split}"
        results[held] = {
            "protocol": seed_protocol(ds, held, seed_dir, counts[held], sel_h, extra_protocol),
            "curve": curve_rows(ho["thresholds"], ho["confusions"]),
            "best": row_at(ho["thresholds"], ho["confusions"], best_t, labels),
        }
    return results


def print_seed_table(runs: dict[str, dict[str, Any]], console: Console | None = None) -> None:
    """Print one table per judged split: a row per run with mIoU, P, R, F1, and the protocol line under it."""
    console = console or Console()
    splits: list[str] = []
    for res in runs.values():
        splits += [k for k in res if k != "run" and k not in splits]
    for split in splits:
        table = Table(title=f"Seed quality on split '{split}' (%)")
        for col in ("run", "threshold", "mIoU", "precision", "recall", "F1"):
            table.add_column(col, justify="right" if col != "run" else "left")
        protocol = None
        for name, res in runs.items():
            if split not in res:
                continue
            b = res[split]["best"]
            protocol = res[split]["protocol"]
            table.add_row(name, f"{b['threshold']:.2f}", f"{100 * b['miou']:.1f}", f"{100 * b['precision']:.1f}",
                          f"{100 * b['recall']:.1f}", f"{100 * b['f1']:.1f}")
        console.print(table)
        if protocol:
            console.print(f"[dim]protocol: {describe(protocol)}[/dim]")
