"""The ``eval`` stage: judge the seeds on the seed split (and held-out split) and write ``seeds/eval.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from woodseg.config import Config, save_config
from woodseg.data.build import load_dataset
from woodseg.evaluate.seeds import curve_rows, describe, evaluate_seeds, row_at, seed_protocol
from woodseg.fsutil import atomic_write_json
from woodseg.seeds.stage import cam_splits


def eval_stage(cfg: Config, *, seed_dir: Path | None = None, extra_protocol: dict[str, Any] | None = None,
               progress: bool = True, console: Console | None = None) -> dict[str, Any]:
    """Sweep thresholds on the seed split, pick the best, apply it to the held-out split; save and print."""
    ds = load_dataset(cfg.data)
    seed_dir = Path(seed_dir) if seed_dir else Path(cfg.out_dir) / "cams"
    labels = ["background", *ds.class_names]
    results: dict[str, Any] = {"run": cfg.name}
    thresholds = list(cfg.eval.thresholds)
    if cfg.eval.fixed_threshold is not None:
        thresholds.append(cfg.eval.fixed_threshold)

    main = evaluate_seeds(ds, cfg.data.seed_split, seed_dir, thresholds, progress)
    curve = curve_rows(main["thresholds"], main["confusions"])
    best_t = max(curve, key=lambda r: r["miou"])["threshold"]
    sel = f"best mIoU over {len(curve)} thresholds on split {cfg.data.seed_split}"
    results[cfg.data.seed_split] = {
        "protocol": seed_protocol(ds, cfg.data.seed_split, seed_dir, len(main["ids"]), sel, extra_protocol),
        "curve": curve,
        "best": row_at(main["thresholds"], main["confusions"], best_t, labels),
    }
    if cfg.eval.fixed_threshold is not None:
        results[cfg.data.seed_split]["fixed"] = row_at(main["thresholds"], main["confusions"],
                                                       cfg.eval.fixed_threshold, labels)
    held = cfg.data.heldout_split
    if held and held in cam_splits(cfg) and held in ds.splits and ds.has_masks(held):
        ho = evaluate_seeds(ds, held, seed_dir, thresholds, progress)
        sel_h = f"fixed at the best threshold of split {cfg.data.seed_split}"
        results[held] = {
            "protocol": seed_protocol(ds, held, seed_dir, len(ho["ids"]), sel_h, extra_protocol),
            "curve": curve_rows(ho["thresholds"], ho["confusions"]),
            "best": row_at(ho["thresholds"], ho["confusions"], best_t, labels),
        }
    out = Path(cfg.out_dir) / "seeds"
    atomic_write_json(out / "eval.json", results)
    save_config(cfg, out / "config.yaml")
    print_seed_table({cfg.name: results}, console)
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
