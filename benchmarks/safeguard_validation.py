"""Do the safeguard's mask-free signals tell when W-OoD made the seeds worse? Candidate rules on the variants.

    python benchmarks/safeguard_validation.py                    # after paper_experiments.py variants
    python benchmarks/safeguard_validation.py --runs paper t5b   # also judge Table 5 (b) runs as cases

Reads ``benchmarks/results/variants/*.csv`` (one row per variant, training seed, run and split, written by
``benchmarks/paper_experiments.py variants``) and writes ``benchmarks/results/safeguard_validation.md`` and
``.csv``. It works on whatever variants and seeds are there.

Protocol:

- A *case* is one W-OoD run (default: Table 5 (f), W-OoD paper; ``--runs``) of one variant and training
  seed, next to the F_in and the no-OoD control (Table 5 (a)) of the same variant and seed.
- *Truth*: the case is harmful when its seed mIoU on the judged split (``--split``, default ``train``) is
  below the control's by more than ``--harm`` points (default 0.5). That needs masks; the rules do not.
- A *rule* fires from the mask-free signals only (held-out mAP of p(c) on ``val``, image labels; CAM
  peak share on the seed split; mean p(c) on held-out context-only images): a signal's change against
  F_in or the control beyond a threshold. The thresholds are fixed in this file (:data:`CANDIDATES`), not
  fitted to the rows read; the shipped rule (:data:`woodseg.evaluate.safeguard.RULE`) is one of them.
- Each rule gets its confusion counts over the cases: hits (fires, harmful), misses (silent, harmful),
  false alarms (fires, not harmful), correct silences. Without a harmful case no rule can be validated,
  and the file says so.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from woodseg.data.benchmark.spec import BENCHMARK_VERSION
from woodseg.errors import DataError, WoodsegError
from woodseg.evaluate.safeguard import RULE
from woodseg.fsutil import atomic_write_text

HERE = Path(__file__).resolve().parent
SIGNALS = {"heldout_map": "held-out mAP", "peak_share": "CAM peak share", "context_pc": "context p(c)"}
LEVELS = {"ood_residual": "OoD residual"}  # judged on W-OoD's own value (reference "itself"), not a difference
REFERENCES = {"F_in": "baseline", "control": "a"}  # reference name -> run key in the variants CSV
NEEDED = ("variant", "benchmark_version", "seed", "key", "run", "split", "miou", *SIGNALS)


@dataclass(frozen=True)
class Condition:
    """``signal`` moved against ``reference`` by more than ``threshold`` points, in ``direction``; with
    reference ``itself`` (direction ``above``), W-OoD's own value is above ``threshold``."""

    signal: str
    reference: str
    direction: str  # "drop" | "rise" | "above"
    threshold: float

    def fires(self, case: Case) -> bool | None:
        if self.reference == "itself":
            value = case.levels.get(self.signal)
            return None if value is None else value > self.threshold
        delta = case.deltas.get((self.signal, self.reference))
        if delta is None:
            return None
        return -delta > self.threshold if self.direction == "drop" else delta > self.threshold

    def describe(self) -> str:
        if self.reference == "itself":
            return f"{LEVELS[self.signal]} of W-OoD > {self.threshold:g}"
        return f"{SIGNALS[self.signal]} {self.direction} vs {self.reference} > {self.threshold:g}"


@dataclass(frozen=True)
class Candidate:
    """A rule: it fires when any of its conditions does."""

    name: str
    conditions: tuple[Condition, ...]

    def fires(self, case: Case) -> bool | None:
        votes = [c.fires(case) for c in self.conditions]
        if any(v for v in votes):
            return True
        return None if any(v is None for v in votes) else False


def _single(signal: str, reference: str, direction: str, thresholds: Iterable[float]) -> list[Candidate]:
    return [Candidate(c.describe(), (c,)) for c in (Condition(signal, reference, direction, t) for t in thresholds)]


def shipped_rule() -> Candidate:
    """:data:`woodseg.evaluate.safeguard.RULE` as a candidate (its fractions in points)."""
    conds = ([Condition("heldout_map", ref, "drop", 100 * RULE.map_drop) for ref in RULE.references]
             if RULE.map_drop is not None else [])
    if RULE.peak_drop is not None:
        conds += [Condition("peak_share", ref, "drop", 100 * RULE.peak_drop) for ref in RULE.references]
    if RULE.ood_residual_max is not None:
        conds.append(Condition("ood_residual", "itself", "above", 100 * RULE.ood_residual_max))
    return Candidate("shipped rule (safeguard.RULE): " + " or ".join(c.describe() for c in conds), tuple(conds))


CANDIDATES: list[Candidate] = [
    shipped_rule(),
    *_single("heldout_map", "F_in", "drop", (0, 1, 2, 5)),
    *_single("heldout_map", "control", "drop", (0, 1, 2, 5)),
    *_single("peak_share", "F_in", "drop", (0, 1, 2)),
    *_single("peak_share", "control", "drop", (0, 1, 2)),
    *_single("context_pc", "F_in", "rise", (0, 5)),
    *_single("context_pc", "control", "rise", (0, 5)),
    *[Candidate(c.describe(), (c,)) for c in (Condition("ood_residual", "itself", "above", t) for t in (5, 10, 20))],
]
"""Every rule judged, thresholds in points (percent). Those of the differences were fixed before reading any
result; the OoD residual's (5, 10, 20) after seeing its first two runs (seed 0 of ``default``: 5 %, of
``default-unreviewed``: 26 %), which are among the cases."""


@dataclass
class Case:
    """One W-OoD run of one (variant, seed) with its F_in and control."""

    variant: str
    seed: int
    key: str
    run: str
    miou: dict[str, float]  # "W-OoD", "F_in", "control"
    deltas: dict[tuple[str, str], float | None] = field(default_factory=dict)  # (signal, reference) -> W-OoD - ref
    levels: dict[str, float | None] = field(default_factory=dict)  # LEVELS signal -> W-OoD's own value

    def harmful(self, harm: float) -> bool:
        return self.miou["W-OoD"] - self.miou["control"] < -harm


def _number(value: str) -> float | None:
    return None if value in ("", None) else float(value)


def read_rows(folder: Path, version: str, split: str) -> tuple[list[dict[str, str]], list[str]]:
    """The per-run rows of ``version`` on ``split`` from every CSV in ``folder``, and the files left out."""
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise DataError("no variant result file (*.csv) here", path=folder,
                        fix="run `python benchmarks/paper_experiments.py variants --variants NAME ...` first")
    rows: list[dict[str, str]] = []
    skipped: list[str] = []
    for path in files:
        mine = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
        if not mine or any(k not in mine[0] for k in NEEDED):
            skipped.append(f"{path.name} (no per-run signal columns: an older format)")
            continue
        mine = [r for r in mine if r["benchmark_version"] == version]
        if not mine:
            skipped.append(f"{path.name} (another benchmark version)")
            continue
        rows += [r for r in mine if r["split"] == split]
    return rows, skipped


def build_cases(rows: list[dict[str, str]], runs: list[str]) -> tuple[list[Case], list[str]]:
    """One case per (variant, seed, run in ``runs``) that has its F_in and control; the incomplete ones named."""
    by: dict[tuple[str, int], dict[str, dict[str, str]]] = {}
    for r in rows:
        slot = by.setdefault((r["variant"], int(r["seed"])), {})
        if r["key"] in slot:
            raise DataError(f"two rows for variant {r['variant']}, seed {r['seed']}, run {r['key']}",
                            fix="keep one result file per variant in benchmarks/results/variants/")
        slot[r["key"]] = r
    cases, incomplete = [], []
    for (variant, seed), slot in sorted(by.items()):
        missing = [name for name, key in REFERENCES.items() if key not in slot]
        for key in runs:
            if key not in slot:
                continue
            if missing:
                incomplete.append(f"{variant} seed {seed} run {key}: no {' or '.join(missing)} row")
                continue
            w = slot[key]
            refs = {name: slot[k] for name, k in REFERENCES.items()}
            case = Case(variant, seed, key, w["run"], {"W-OoD": float(w["miou"])}
                        | {name: float(r["miou"]) for name, r in refs.items()})
            for sig in SIGNALS:
                for name, r in refs.items():
                    a, b = _number(w[sig]), _number(r[sig])
                    case.deltas[(sig, name)] = None if a is None or b is None else a - b
            case.levels = {sig: _number(w.get(sig, "")) for sig in LEVELS}  # absent from older CSVs
            cases.append(case)
    return cases, incomplete


def confusion(candidate: Candidate, cases: list[Case], harm: float) -> dict[str, int]:
    out = {"hits": 0, "misses": 0, "false_alarms": 0, "correct_silences": 0, "not_evaluable": 0}
    for case in cases:
        fires = candidate.fires(case)
        if fires is None:
            out["not_evaluable"] += 1
            continue
        bad = case.harmful(harm)
        out["hits" if fires and bad else "misses" if bad else "false_alarms" if fires else "correct_silences"] += 1
    return out


def _d(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def report(cases: list[Case], harm: float, split: str, version: str, runs: list[str], skipped: list[str],
           incomplete: list[str], command: str) -> tuple[str, str]:
    """The Markdown report and the per-case CSV (with each rule's verdict as a 0/1/empty column)."""
    seeds: dict[str, list[int]] = {}
    for c in cases:
        seeds.setdefault(c.variant, [])
        if c.seed not in seeds[c.variant]:
            seeds[c.variant].append(c.seed)
    n_bad = sum(c.harmful(harm) for c in cases)
    lines = ["# Safeguard validation: do the mask-free signals flag W-OoD runs that made seeds worse?", "",
             f"Benchmark v{version}. Cases: runs {', '.join(runs)} (Table 5 keys; `paper` = W-OoD paper, row (f)) "
             f"per variant and training seed: " + "; ".join(f"{v} (seeds {' '.join(map(str, s))})"
                                                            for v, s in seeds.items()) + ".", "",
             f"Protocol: truth = the run's seed mIoU on split '{split}' is below the no-OoD control's (Table 5 (a), "
             f"same variant and seed) by more than {harm:g} points (needs masks). Each rule fires from mask-free "
             "signals only: held-out mAP of p(c) on split 'val' (image labels), CAM peak share on the seed split, "
             "mean p(c) on held-out context-only images; a change is the run's value minus the reference's (F_in or "
             "the control of the same seed), in points. The OoD residual (the share of the run's own OoD list it "
             "still scores p(c) >= 0.5) is judged as W-OoD's own value. Thresholds are fixed in "
             "`benchmarks/safeguard_validation.py`, not fitted to these rows (the OoD residual's were set after "
             "seeing two of its cases, seed 0 of default and of default-unreviewed; see the file).", ""]
    if skipped:
        lines += ["Files left out: " + "; ".join(skipped) + ".", ""]
    if incomplete:
        lines += ["Cases left out: " + "; ".join(incomplete) + ".", ""]
    lines += ["## Cases", "", "| variant | seed | run | F_in | control | W-OoD | W-OoD - control | W-OoD - F_in | "
              + " | ".join(f"{s} vs {r}" for s in SIGNALS.values() for r in REFERENCES)
              + "".join(f" | {n} of W-OoD" for n in LEVELS.values()) + " | harmful |",
              "|---|---|---|---|---|---|---|---|" + "---|" * (len(SIGNALS) * len(REFERENCES) + len(LEVELS)) + "---|"]
    for c in cases:
        m = c.miou
        lines.append(f"| {c.variant} | {c.seed} | {c.key} | {m['F_in']:.1f} | {m['control']:.1f} | {m['W-OoD']:.1f} | "
                     f"{m['W-OoD'] - m['control']:+.1f} | {m['W-OoD'] - m['F_in']:+.1f} | "
                     + " | ".join(_d(c.deltas[(s, r)]) for s in SIGNALS for r in REFERENCES)
                     + "".join(" | -" if c.levels.get(k) is None else f" | {c.levels[k]:.1f}" for k in LEVELS)
                     + f" | {'yes' if c.harmful(harm) else 'no'} |")
    lines += ["", "## Rules", ""]
    if n_bad == 0:
        lines += [f"**No harmful case**: in none of the {len(cases)} cases is the run's seed mIoU below the control's "
                  f"by more than {harm:g} points. A rule cannot be validated without a harmful case: the counts "
                  "below show only false alarms and correct silences.", ""]
    else:
        lines += [f"{n_bad} of {len(cases)} cases are harmful.", ""]
    lines += ["| rule | hits | misses | false alarms | correct silences | not evaluable |", "|---|---|---|---|---|---|"]
    counts = {cand.name: confusion(cand, cases, harm) for cand in CANDIDATES}
    for name, k in counts.items():
        lines.append(f"| {name} | {k['hits']} | {k['misses']} | {k['false_alarms']} | {k['correct_silences']} | "
                     f"{k['not_evaluable']} |")
    if n_bad:
        good = sorted((k["false_alarms"], name) for name, k in counts.items() if k["hits"] and not k["misses"])
        lines += ["", "Rules that catch every harmful case here: " + ("; ".join(
            f"{name} ({fa} false alarms)" for fa, name in good) if good else "none") + "."]
        lines += ["", f"{len(CANDIDATES)} rules are judged on the same {len(cases)} cases: a rule that fits them is a "
                  "hypothesis to confirm on other seeds or variants, not yet a validated detector."]
    lines += ["", "Per-case values and each rule's verdict are in the CSV beside this file.", "",
              f"Command: `{command}`", ""]
    csv_rows = []
    for c in cases:
        row: dict[str, Any] = {"variant": c.variant, "seed": c.seed, "run_key": c.key, "run": c.run,
                               "split": split, "miou_f_in": c.miou["F_in"], "miou_control": c.miou["control"],
                               "miou_wood": c.miou["W-OoD"],
                               "d_miou_vs_control": round(c.miou["W-OoD"] - c.miou["control"], 3),
                               "d_miou_vs_f_in": round(c.miou["W-OoD"] - c.miou["F_in"], 3)}
        row |= {f"d_{s}_vs_{r}": "" if c.deltas[(s, r)] is None else round(c.deltas[(s, r)], 3)  # type: ignore[arg-type]
                for s in SIGNALS for r in REFERENCES}
        row |= {k: "" if c.levels.get(k) is None else round(c.levels[k], 3) for k in LEVELS}  # type: ignore[arg-type]
        row["harmful"] = int(c.harmful(harm))
        for cand in CANDIDATES:
            fires = cand.fires(c)
            row[f"fires: {cand.name}"] = "" if fires is None else int(fires)
        csv_rows.append(row)
    out = io.StringIO()
    if csv_rows:
        w = csv.DictWriter(out, fieldnames=list(csv_rows[0]))
        w.writeheader()
        w.writerows(csv_rows)
    return "\n".join(lines), out.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=HERE / "results",
                    help="reads <results>/variants/*.csv, writes <results>/safeguard_validation.md/.csv")
    ap.add_argument("--runs", nargs="+", default=["paper"], help="run keys judged as cases (default: paper = (f))")
    ap.add_argument("--split", default="train", help="judged split of the seed mIoU (default: train)")
    ap.add_argument("--harm", type=float, default=0.5, help="harmful: mIoU below the control by more (points)")
    ap.add_argument("--version", default=BENCHMARK_VERSION, help="benchmark version of the rows read")
    args = ap.parse_args(argv)
    command = "python benchmarks/safeguard_validation.py " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        rows, skipped = read_rows(args.results / "variants", args.version, args.split)
        cases, incomplete = build_cases(rows, args.runs)
        if not cases:
            raise DataError(f"no complete case (runs {args.runs} with F_in and control, benchmark v{args.version}, "
                            f"split '{args.split}')" + (f"; left out: {'; '.join(skipped + incomplete)}"
                                                        if skipped or incomplete else ""),
                            path=args.results / "variants",
                            fix="run `python benchmarks/paper_experiments.py variants` for this benchmark version")
    except WoodsegError as exc:
        print(exc, file=sys.stderr)
        return 2
    md, table = report(cases, args.harm, args.split, args.version, args.runs, skipped, incomplete, command)
    atomic_write_text(args.results / "safeguard_validation.md", md)
    atomic_write_text(args.results / "safeguard_validation.csv", table)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
