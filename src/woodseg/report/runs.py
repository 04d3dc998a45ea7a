"""Reading what a run folder holds for the report: ``eval/seeds.json``, ``seeds/``, the classifier and its log.

Required pieces (the seed evaluation) raise :class:`DataError` naming the file and the command that makes
it; optional ones (the training log) come back empty so the report can say they are missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from woodseg.errors import DataError
from woodseg.fsutil import read_jsonl
from woodseg.runtime.paths import RunPaths

# Keys of a metrics.jsonl record that are not loss terms.
NON_TERM_KEYS = frozenset({"step", "epoch", "lr", "loss", "images_per_s", "time"})


@dataclass
class RunData:
    """One run as the report sees it."""

    name: str
    folder: Path
    eval: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def eval_path(self) -> Path:
        return RunPaths(self.folder).eval("seeds")

    @property
    def cam_dir(self) -> Path:
        return RunPaths(self.folder).seeds

    @property
    def checkpoint(self) -> Path:
        return RunPaths(self.folder).checkpoint

    @property
    def metrics_path(self) -> Path:
        return RunPaths(self.folder).metrics

    @property
    def splits(self) -> list[str]:
        """Judged splits in eval.json order (the seed split first)."""
        return [k for k, v in self.eval.items() if isinstance(v, dict) and "best" in v]

    def best(self, split: str) -> dict[str, Any] | None:
        return self.eval[split]["best"] if split in self.splits else None

    def protocol(self, split: str) -> dict[str, Any] | None:
        return self.eval[split].get("protocol") if split in self.splits else None

    def require_split(self, split: str) -> dict[str, Any]:
        if split not in self.splits:
            raise DataError(
                f"run '{self.name}' has no seed evaluation for split '{split}' "
                f"(it judged: {', '.join(self.splits) or 'none'})",
                path=self.eval_path,
                fix=f"make CAMs for split '{split}' and re-run `woodseg eval` for this run "
                    f"(data.seed_split / data.heldout_split), or pick another split",
            )
        return self.eval[split]

    @property
    def terms(self) -> list[str]:
        seen: list[str] = []
        for rec in self.metrics:
            seen += [k for k in rec if k not in NON_TERM_KEYS and k not in seen and _is_number(rec[k])]
        return seen


def _flatten(rec: dict[str, Any]) -> dict[str, Any]:
    """The engine logs terms as top-level keys; a nested ``terms`` dict is accepted too."""
    terms = rec.get("terms")
    if isinstance(terms, dict):
        rec = {**{k: v for k, v in rec.items() if k != "terms"}, **terms}
    return rec


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def load_run(name: str, folder: str | Path) -> RunData:
    """Read a run folder; a missing or unreadable ``eval/seeds.json`` is a :class:`DataError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"run folder of '{name}' does not exist", path=folder,
                        fix="pass the out_dir of a trained run (woodseg train / cam / eval)")
    path = RunPaths(folder).eval("seeds")
    if not path.is_file():
        raise DataError(f"run '{name}' has no seed evaluation: {path} does not exist", path=path,
                        fix=f"run `woodseg cam` then `woodseg eval` with out_dir={folder}")
    try:
        ev = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"seed evaluation of run '{name}' is not readable JSON ({exc})", path=path,
                        fix="re-run `woodseg eval` for this run") from exc
    run = RunData(name, folder, ev if isinstance(ev, dict) else {})
    if not run.splits:
        raise DataError(f"seed evaluation of run '{name}' holds no judged split", path=path,
                        fix="re-run `woodseg eval` for this run")
    for split in run.splits:
        best = run.eval[split]["best"]
        missing = [k for k in ("threshold", "miou", "precision", "recall", "f1", "per_class_iou") if k not in best]
        if missing or "protocol" not in run.eval[split]:
            raise DataError(f"seed evaluation of run '{name}', split '{split}', lacks "
                            f"{', '.join(missing) or 'protocol'}", path=path,
                            fix="re-run `woodseg eval` with this version of woodseg")
    mpath = run.metrics_path
    if mpath.is_file():
        try:
            run.metrics = [_flatten(r) for r in read_jsonl(mpath) if isinstance(r, dict) and "step" in r]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            run.metrics = []
    return run
