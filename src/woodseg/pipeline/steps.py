"""The W-OoD experiment as plain steps on files, shared by ``woodseg demo`` and ``benchmarks/``.

    train_stage(cfg)                      classifier/last.pt           (baseline F_in, or W-OoD from F_in)
    mine_hard_ood(...)                    ood/review.sqlite3, ood_list.txt, review.json, mining.record.json
    seed_stage(cfg)                       seeds/*.npz, eval/seeds.json

The per-run stages come from the one ordered list in :mod:`woodseg.pipeline.stages`. Each step skips
work that is already on disk and made from the same inputs, so an interrupted demo or sweep resumes
where it stopped, and a changed input (a retrained F_in) redoes what depends on it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from woodseg.config import Config, build_config, merge
from woodseg.data.dataset import OodSet
from woodseg.data.ood_list import read_ood_list, write_ood_list
from woodseg.errors import DataError
from woodseg.fsutil import atomic_write_json
from woodseg.models.cam_net import load_classifier
from woodseg.pipeline.stages import run_stages
from woodseg.runtime.fingerprint import read_record, stage_record

log = logging.getLogger(__name__)


@dataclass
class Timer:
    """Wall-clock seconds per named step (reported with the results)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t


def derive(cfg: Config, **overrides: Any) -> Config:
    """A copy of ``cfg`` with nested overrides, e.g. ``derive(cfg, wood={"variant": "none"})``."""
    return build_config(merge(cfg.model_dump(mode="json"), overrides), where=f"derived config of {cfg.name}")


def train_stage(cfg: Config, *, progress: bool = True) -> Path:
    """The ``train`` stage of the list: the classifier's ``last.pt``."""
    return run_stages(cfg, stop="train", progress=progress)["train"]


def seed_stage(cfg: Config, *, progress: bool = True, extra_protocol: dict[str, Any] | None = None,
               quiet_table: bool = False) -> dict[str, Any]:
    """The ``cam`` and ``eval`` stages of the list for one trained run (both resume/skip when done)."""
    from rich.console import Console

    done = run_stages(cfg, start="cam", stop="eval", progress=progress, extra_protocol=extra_protocol,
                      console=Console(quiet=quiet_table))
    return done["eval"]


@dataclass
class MiningResult:
    ood_list: Path
    review: dict[str, Any]
    n_candidates: dict[str, int]


def mine_hard_ood(checkpoint: Path, pool: OodSet, pool_root: Path, out_dir: Path, *,
                  is_positive: Callable[[str, str], bool], threshold: float = 0.5, per_class: int = 40,
                  long_side: int | None = None, device: str = "cpu", batch_size: int = 32,
                  progress: bool = True) -> MiningResult:
    """Paper Sec. 3.1 on a pool: rank by p(c) with F_in, keep p(c) >= threshold, prune positives.

    The pruning is the review app's own store and decision code driven by ``is_positive`` (a simulated
    reviewer reading hidden truth); a person would do the same in ``woodseg ood review``. Writes
    ``ood_list.txt`` (the kept images, official format) and ``review.json`` (r and n/(1-r) per class).
    """
    from tqdm import tqdm

    from woodseg.ood.candidates import select_candidates
    from woodseg.ood.export import kept_entries
    from woodseg.ood.scoring import score_pool
    from woodseg.ood.simulate import simulate_from_candidates

    out_dir = Path(out_dir)
    list_path, review_path = out_dir / "ood_list.txt", out_dir / "review.json"
    record = stage_record("mine-hard-ood", {"threshold": threshold, "per_class": per_class, "long_side": long_side,
                                            "pool": pool.fingerprint(), "batch_size": batch_size},
                          {"checkpoint": checkpoint})
    record_path = out_dir / "mining.record.json"
    old = read_record(record_path)
    if list_path.exists() and review_path.exists():
        # a folder from before records were kept is trusted as it is (the paper-experiment runs)
        if old is None or old["fingerprint"] == record["fingerprint"]:
            review = json.loads(review_path.read_text())
            if old is None:
                atomic_write_json(record_path, record)
            return MiningResult(list_path, review, review.get("n_candidates", {}))
        log.warning("%s: ranking inputs changed since the last review; ranking and reviewing again", out_dir)
    model, names = load_classifier(checkpoint, device)
    bar = tqdm(total=len(pool), desc="rank OoD pool", unit="img", disable=not progress, leave=False)
    scores = score_pool(model, pool, names, batch_size=batch_size, long_side=long_side, device=device,
                        progress=bar.update)
    bar.close()
    candidates = select_candidates(scores, pool.ids, names, threshold)
    db = out_dir / "review.sqlite3"
    db.unlink(missing_ok=True)  # a half-finished simulated review is redone from the start
    store, outcomes = simulate_from_candidates(candidates, is_positive, db, root=pool_root, target_n=per_class,
                                               meta={"threshold": threshold, "checkpoint": str(checkpoint)})
    entries, _ = kept_entries(store)
    store.close()
    if not entries:
        raise DataError("no hard OoD image survived ranking and review", path=out_dir,
                        fix="lower the ranking threshold or use a larger candidate pool")
    write_ood_list(list_path, entries)
    total_rev = sum(o.reviewed for o in outcomes.values())
    total_rej = sum(o.rejected for o in outcomes.values())
    review = {
        "simulated": True,
        "threshold": threshold,
        "per_class_target": per_class,
        "n_candidates": {k: len(v) for k, v in candidates.items()},
        "classes": {k: o.to_json() for k, o in outcomes.items()},
        "total": {"reviewed": total_rev, "rejected": total_rej, "kept": len(entries),
                  "r": total_rej / total_rev if total_rev else 0.0},
    }
    atomic_write_json(review_path, review)
    atomic_write_json(record_path, record)
    return MiningResult(list_path, review, review["n_candidates"])


def ood_subset(list_path: Path, root: Path, n: int | None, seed: int, out: Path) -> Path:
    """A seeded random subset of an OoD list (order kept), for |D_ood| sweeps; n=None keeps all."""
    ood = read_ood_list(list_path, root)
    if n is None or n >= len(ood):
        ids = ood.ids
    else:
        pick = np.sort(np.random.default_rng(seed).choice(len(ood), size=n, replace=False))
        ids = [ood.ids[i] for i in pick]
    write_ood_list(out, ids)
    return out
