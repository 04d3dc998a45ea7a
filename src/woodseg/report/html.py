"""The analysis report: one self-contained HTML file comparing a baseline run with W-OoD runs.

Sections: header with a generated summary, seed tables per judged split (every number with its protocol),
threshold curves, per-class IoU (paper Fig. 6), CAM overlays (Fig. 3), feature t-SNE (Fig. 7), the OoD
review cost, training curves, run times and throughput. Every figure is embedded as a base64 PNG; the page
loads nothing from the network or the disk.
"""

from __future__ import annotations

import base64
import datetime as _dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape

from woodseg.data.dataset import LabelledImageSet
from woodseg.errors import ConfigError, DataError
from woodseg.evaluate.seeds import describe
from woodseg.fsutil import atomic_write_text
from woodseg.report import figures, overlays, refined
from woodseg.report.runs import RunData, load_run
from woodseg.report.tsne import feature_tsne

METRICS = (("miou", "mIoU"), ("precision", "precision"), ("recall", "recall"), ("f1", "F1"))


@dataclass
class ReportInputs:
    """What the report compares. ``runs`` maps a display name to a run folder (``out_dir``)."""

    title: str
    dataset: LabelledImageSet
    runs: dict[str, Path]
    baseline: str
    compare: list[str]
    ood_paths: Sequence[Path] = ()
    review: dict | None = None
    timings: dict[str, float] = field(default_factory=dict)
    throughput: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    refined: dict[str, Path] = field(default_factory=dict)  # runs with masks + segmenter (Tables 2, 3)


# ----------------------------------------------------------------------------------------------- format


def pct(v: float | None) -> str:
    """A [0, 1] score as a percentage with one decimal, as every table of the page shows it."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{100 * v:.1f}"


def delta(v: float | None, b: float | None) -> str:
    if v is None or b is None or math.isnan(v) or math.isnan(b):
        return "–"
    d = round(100 * (v - b), 1)
    return f"{d + 0.0:+.1f}"  # + 0.0: no "-0.0"


def _sign(v: float | None, b: float | None) -> str:
    if v is None or b is None or math.isnan(v) or math.isnan(b):
        return ""
    d = round(100 * (v - b), 1)
    return "pos" if d > 0 else "neg" if d < 0 else ""


def _float(v: Any) -> float:
    return float("nan") if v is None else float(v)


def duration(seconds: float) -> str:
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {s % 60:.0f} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# ------------------------------------------------------------------------------------------------ pieces


def _check_inputs(inputs: ReportInputs) -> list[str]:
    if inputs.baseline not in inputs.runs:
        raise ConfigError(f"baseline '{inputs.baseline}' is not one of the runs ({', '.join(inputs.runs)})",
                          fix="pass the display name of the baseline run")
    missing = [c for c in inputs.compare if c not in inputs.runs]
    if missing:
        raise ConfigError(f"compared runs {missing} are not among the runs ({', '.join(inputs.runs)})",
                          fix="name runs by their keys in ReportInputs.runs")
    compare = [c for c in inputs.compare if c != inputs.baseline]
    if not compare:
        raise ConfigError("the report needs at least one run to compare with the baseline",
                          fix="set ReportInputs.compare, e.g. ['W-OoD (paper)']")
    return [inputs.baseline, *compare, *[n for n in inputs.runs if n != inputs.baseline and n not in compare]]


def _check_classes(run: RunData, ds: LabelledImageSet) -> None:
    for split in run.splits:
        classes = (run.protocol(split) or {}).get("classes")
        if classes is not None and list(classes) != list(ds.class_names):
            raise DataError(f"run '{run.name}' was judged on classes {list(classes)}, the dataset has "
                            f"{list(ds.class_names)}", path=run.eval_path,
                            fix="report runs made on this dataset (or re-run `woodseg eval` on it)")


def _seed_split(base: RunData) -> str:
    for s in base.splits:
        if str((base.protocol(s) or {}).get("threshold_selection", "")).startswith("best"):
            return s
    return base.splits[0]


def _seed_tables(runs: list[RunData], splits: list[str], baseline: RunData) -> list[dict[str, Any]]:
    tables = []
    for split in splits:
        b = baseline.best(split)
        rows: list[dict[str, Any]] = []
        fixed_rows: list[dict[str, Any]] = []
        lines: dict[str, list[str]] = {}
        warnings: list[str] = []
        for run in runs:
            best = run.best(split)
            if best is None:
                rows.append({"run": run.name, "missing": True, "baseline": run is baseline})
                continue
            rows.append(_row(run.name, best, b if run is not baseline else None, run is baseline))
            fixed = run.eval[split].get("fixed")
            if fixed:
                bf = baseline.eval.get(split, {}).get("fixed") if run is not baseline else None
                fixed_rows.append(_row(f"{run.name} (fixed threshold)", fixed, bf, run is baseline))
            lines.setdefault(describe(run.protocol(split)), []).append(run.name)
            edge = _edge_warning(run, split)
            if edge:
                warnings.append(edge)
        protocol = [{"runs": names, "text": text} for text, names in lines.items()]
        if len(protocol) == 1:
            protocol[0]["runs"] = []
        metrics_def = next(((run.protocol(split) or {}).get("metrics") for run in runs if run.best(split)), None)
        tables.append({"split": split, "rows": rows + fixed_rows, "protocol": protocol, "metrics": metrics_def,
                       "baseline_has": b is not None, "warnings": warnings})
    return tables


def _edge_warning(run: RunData, split: str) -> str | None:
    """A threshold picked at the end of the sweep may not be the optimum: say so next to the table."""
    if not str((run.protocol(split) or {}).get("threshold_selection", "")).startswith("best"):
        return None
    ts = [float(r["threshold"]) for r in run.eval[split].get("curve") or []]
    if len(ts) < 2:
        return None
    t, lo, hi = float(run.best(split)["threshold"]), min(ts), max(ts)
    if abs(t - lo) > 1e-9 and abs(t - hi) > 1e-9:
        return None
    end = "highest" if abs(t - hi) <= 1e-9 else "lowest"
    return (f"{run.name}: the best threshold {t:.2f} is the {end} one swept ({lo:.2f}–{hi:.2f}); the optimum may "
            f"lie outside the sweep (widen eval.thresholds and re-run `woodseg eval`).")


def _row(name: str, best: dict[str, Any], base: dict[str, Any] | None, is_baseline: bool) -> dict[str, Any]:
    cells = []
    for key, _ in METRICS:
        v = _float(best[key])
        bv = _float(base[key]) if base else None
        cells.append({"value": pct(v), "delta": delta(v, bv) if base else "", "cls": _sign(v, bv) if base else ""})
    return {"run": name, "cells": cells, "threshold": f"{float(best['threshold']):.2f}", "baseline": is_baseline,
            "missing": False}


def _summary(runs: list[RunData], splits: list[str], baseline: RunData, compare: list[str]) -> list[str]:
    out = []
    by_name = {r.name: r for r in runs}
    for name in compare:
        run = by_name[name]
        for split in splits:
            b, c = baseline.best(split), run.best(split)
            if b is None or c is None:
                continue
            out.append(
                f"{name} changes seed mIoU on split {split} from {pct(_float(b['miou']))} to "
                f"{pct(_float(c['miou']))} ({delta(_float(c['miou']), _float(b['miou']))}), precision "
                f"{delta(_float(c['precision']), _float(b['precision']))}, recall "
                f"{delta(_float(c['recall']), _float(b['recall']))}, F1 {delta(_float(c['f1']), _float(b['f1']))} "
                f"(percentage points vs {baseline.name}, each at its best-mIoU threshold"
                f"{'' if split == splits[0] else ' of the seed split'}).")
    return out


def _curves(runs: list[RunData], split: str, colours: dict[str, str]) -> bytes | None:
    curves = []
    for run in runs:
        if run.best(split) is None:
            continue
        rows = run.eval[split].get("curve") or []
        if not rows:
            continue
        arr = {k: np.array([_float(r[k]) for r in rows]) for k in ("threshold", "miou", "precision", "recall")}
        curves.append(figures.Curve(run.name, arr["threshold"], arr["miou"], arr["precision"], arr["recall"],
                                    float(run.best(split)["threshold"]), colours[run.name]))
    return figures.threshold_curves(curves, split) if curves else None


def _per_class(baseline: RunData, compares: list[RunData], split: str, colours: dict[str, str]) -> dict[str, Any]:
    b = baseline.best(split)
    labels = list(b["per_class_iou"])
    present = [c for c in compares if c.best(split) is not None]

    def vals(run: RunData, key: str = "per_class_iou") -> np.ndarray:
        d = run.best(split).get(key) or {}
        return np.array([_float(d.get(lab)) for lab in labels])

    base_iou = vals(baseline)
    first = present[0] if present else None
    gain = vals(first) - base_iou if first else np.zeros(len(labels))
    order = sorted(range(len(labels)), key=lambda i: (math.isnan(gain[i]), -np.nan_to_num(gain[i], nan=0.0),
                                                      labels[i]))
    series = [(baseline.name, base_iou[order], colours[baseline.name])]
    series += [(c.name, vals(c)[order], colours[c.name]) for c in present]
    png = figures.per_class_bars([labels[i] for i in order], series, split, first.name if first else None)
    rows = []
    cvals = {c.name: (vals(c), vals(c, "per_class_precision"), vals(c, "per_class_recall")) for c in present}
    bp, br = vals(baseline, "per_class_precision"), vals(baseline, "per_class_recall")
    for i in order:
        cells = []
        for c in present:
            iou, p, r = cvals[c.name]
            cells.append({"iou": pct(iou[i]), "d_iou": delta(iou[i], base_iou[i]), "cls": _sign(iou[i], base_iou[i]),
                          "d_p": delta(p[i], bp[i]), "d_r": delta(r[i], br[i])})
        rows.append({"label": labels[i], "baseline": pct(base_iou[i]), "cells": cells})
    return {"png": png, "rows": rows, "compare": [c.name for c in present], "split": split,
            "gain": {labels[i]: float(gain[i]) for i in range(len(labels))}}


def _training(runs: list[RunData]) -> tuple[bytes | None, list[str], list[dict[str, str]]]:
    series, missing, speed = [], [], []
    for run in runs:
        if not run.metrics:
            missing.append(run.name)
            continue
        steps = np.array([r["step"] for r in run.metrics], dtype=np.float64)
        s = {"loss": np.array([_float(r.get("loss")) for r in run.metrics])}
        for t in run.terms:
            s[t] = np.array([_float(r.get(t)) for r in run.metrics])
        series.append(figures.TrainingSeries(run.name, steps, s))
        ips = [float(r["images_per_s"]) for r in run.metrics[1:] or run.metrics if "images_per_s" in r]
        if ips:
            speed.append({"name": f"{run.name}: train images/s (median over logged steps, metrics.jsonl)",
                          "value": f"{float(np.median(ips)):.1f}"})
    return (figures.training_curves(series) if series else None), missing, speed


def _review(review: dict | None) -> dict[str, Any] | None:
    if review is None:
        return None
    rows = []
    tot = {"reviewed": 0, "kept": 0, "rejected": 0, "cost": 0.0, "n": 0}
    cost_finite = True
    for name, v in review.items():
        if not isinstance(v, dict):
            continue
        reviewed, kept, rejected = int(v.get("reviewed", 0)), int(v.get("kept", 0)), int(v.get("rejected", 0))
        r = v.get("r")
        r = (rejected / reviewed if reviewed else float("nan")) if r is None else float(r)
        cost = v.get("cost")
        cost = float("inf") if cost is None else float(cost)
        cost_finite &= math.isfinite(cost)
        target = v.get("target_n", v.get("n"))
        rows.append({"name": name, "reviewed": reviewed, "kept": kept, "rejected": rejected,
                     "r": "–" if math.isnan(r) else f"{r:.3f}",
                     "cost": f"{cost:.1f}" if math.isfinite(cost) else "∞",
                     "target": "" if target is None else str(target)})
        tot["reviewed"] += reviewed
        tot["kept"] += kept
        tot["rejected"] += rejected
        tot["cost"] += cost if math.isfinite(cost) else 0.0
    tr = tot["rejected"] / tot["reviewed"] if tot["reviewed"] else float("nan")
    total = {"reviewed": tot["reviewed"], "kept": tot["kept"], "rejected": tot["rejected"],
             "r": "–" if math.isnan(tr) else f"{tr:.3f}", "cost": f"{tot['cost']:.1f}" if cost_finite else "∞"}
    return {"rows": rows, "total": total, "simulated": bool(review.get("simulated")),
            "has_target": any(r["target"] for r in rows)}


# -------------------------------------------------------------------------------------------------- main


def write_report(inputs: ReportInputs, out: Path, *, n_overlays: int = 8, overlay_split: str | None = None,
                 tsne_classes: list[str] | None = None, tsne_max_per_group: int = 150, device: str = "cpu",
                 batch_size: int = 8) -> Path:
    """Write the report to ``out`` (atomically) and return its path; ``batch_size`` images per forward pass
    when the t-SNE extracts features."""
    out = Path(out)
    ds = inputs.dataset
    order = _check_inputs(inputs)
    compare = [c for c in inputs.compare if c != inputs.baseline]
    runs = [load_run(name, inputs.runs[name]) for name in order]
    by_name = {r.name: r for r in runs}
    for run in runs:
        _check_classes(run, ds)
    baseline = by_name[inputs.baseline]
    splits: list[str] = []
    for run in runs:
        splits += [s for s in run.splits if s not in splits]
    seed_split = _seed_split(baseline)
    colours = figures.run_colours(order, inputs.baseline)

    # Check what the overlays need before drawing anything: the split judged by every shown run, with masks.
    ov_split = overlay_split or splits[0]
    shown = [baseline, *[by_name[c] for c in compare]]
    for run in shown:
        run.require_split(ov_split)
    ds.check_split(ov_split, need_masks=True)
    for name in compare:
        by_name[name].require_split(seed_split)

    tables = _seed_tables(runs, splits, baseline)
    summary = _summary(runs, splits, baseline, compare)

    curves_png = _curves(runs, seed_split, colours)
    per_class = _per_class(baseline, [by_name[c] for c in compare], seed_split, colours)

    # Overlays: baseline and the compared runs, each at its best threshold on the split.
    thresholds = {r.name: float(r.best(ov_split)["threshold"]) for r in shown}
    scored = overlays.image_scores(ds, ov_split, shown, thresholds)
    chosen = overlays.choose(scored, baseline.name, compare[0], n_overlays)
    ov = overlays.render_overlays(ds, chosen, shown, thresholds, baseline.name, compare[0])
    n_gain = sum(1 for o in ov if o.kind == "gain")
    n_loss = len(ov) - n_gain
    n_worse = sum(1 for s in scored if s.gain(baseline.name, compare[0]) < 0)

    # t-SNE (optional: needs OoD images).
    tsne = None
    tsne_note = ""
    if not inputs.ood_paths:
        tsne_note = "Skipped: no OoD images were given (ReportInputs.ood_paths is empty)."
    else:
        classes = tsne_classes
        if classes is None:
            gains = [(g, lab) for lab, g in per_class["gain"].items() if lab != "background" and not math.isnan(g)]
            classes = [lab for _, lab in sorted(gains, key=lambda t: (-t[0], t[1]))[:2]]
        tsne = feature_tsne(ds, baseline, by_name[compare[0]], list(inputs.ood_paths), classes,
                            tsne_max_per_group, device, batch_size=batch_size)
        if tsne.png is None:
            tsne_note = f"Skipped: {tsne.note}."

    refinement = _refinement(inputs, seed_split, {r.name: float(r.best(seed_split)["threshold"])
                                                  for r in runs if r.best(seed_split) is not None}, n_overlays)

    training_png, no_metrics, speed = _training(runs)
    timings = [{"name": k, "value": duration(v)} for k, v in inputs.timings.items()]
    if inputs.timings:
        timings.append({"name": "total", "value": duration(sum(inputs.timings.values())), "total": True})
    throughput = [{"name": k, "value": f"{float(v):.1f}"} for k, v in inputs.throughput.items()] + speed

    context = {
        "title": inputs.title,
        "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "notes": dict(inputs.notes),
        "summary": summary,
        "baseline": baseline.name,
        "compare": compare,
        "runs": [{"name": r.name, "folder": str(r.folder), "colour": colours[r.name]} for r in runs],
        "splits": splits,
        "seed_split": seed_split,
        "tables": tables,
        "metrics": METRICS,
        "curves": data_uri(curves_png) if curves_png else None,
        "per_class": {**per_class, "png": data_uri(per_class["png"])},
        "overlays": [{"id": o.image_id, "kind": o.kind, "gain": f"{100 * o.gain:+.1f}", "classes": o.classes,
                      "miou": {k: pct(v) for k, v in o.miou.items()}, "png": data_uri(o.png)} for o in ov],
        "overlay_split": ov_split,
        "overlay_n_split": len(scored),
        "overlay_n_gain": n_gain,
        "overlay_n_loss": n_loss,
        "overlay_n_worse": n_worse,
        "overlay_thresholds": {k: f"{v:.2f}" for k, v in thresholds.items()},
        "refinement": refinement,
        "tsne": tsne,
        "tsne_png": data_uri(tsne.png) if tsne is not None and tsne.png else None,
        "tsne_note": tsne_note,
        "tsne_max": tsne_max_per_group,
        "review": _review(inputs.review),
        "training": data_uri(training_png) if training_png else None,
        "no_metrics": no_metrics,
        "timings": timings,
        "throughput": throughput,
        "version": _version(),
    }
    html = _environment().get_template("report.html.j2").render(**context)
    atomic_write_text(out, html)
    return out


def _refinement(inputs: ReportInputs, seed_split: str, thresholds: dict[str, float], n: int
                ) -> dict[str, Any] | None:
    """Tables 2 and 3 of the refined runs, and mask overlays on the held-out split (seeds at each run's best
    threshold of the seed split)."""
    if not inputs.refined:
        return None
    ds = inputs.dataset
    held = next((s for s in ds.splits if s != seed_split and ds.has_masks(s)
                           and all((p / "predictions" / s).is_dir() for p in inputs.refined.values())), None)
    results = {name: refined.refined_results(folder, seed_split, held) for name, folder in inputs.refined.items()}
    names = list(results)
    base = results[names[0]]
    rows = []
    for name, r in results.items():
        t2 = r["table2"]
        cells = [{"value": pct(t2[k]["miou"]),
                  "delta": delta(t2[k]["miou"], base["table2"][k]["miou"]) if name != names[0] else "",
                  "cls": _sign(t2[k]["miou"], base["table2"][k]["miou"]) if name != names[0] else ""}
                 for k in ("seed", "crf", "mask")]
        seg = [{"value": pct(r["segmentation"][s]["miou"]) if s in r["segmentation"] else "–",
                "delta": delta(r["segmentation"].get(s, {}).get("miou"), base["segmentation"].get(s, {}).get("miou"))
                if name != names[0] else "",
                "cls": _sign(r["segmentation"].get(s, {}).get("miou"), base["segmentation"].get(s, {}).get("miou"))
                if name != names[0] else ""} for s in base["segmentation"]]
        rows.append({"run": name, "cells": cells, "seg": seg, "baseline": name == names[0]})
    protocol = [{"name": label, "text": base["table2"][k]["protocol"]}
                for k, label in (("seed", "Seed"), ("crf", "+CRF"), ("mask", "Mask"))]
    protocol += [{"name": f"segmentation {s}", "text": c["protocol"]} for s, c in base["segmentation"].items()]
    shown: list[dict[str, Any]] = []
    if held is not None and len(names) > 1 and n > 0:
        chosen = refined.choose_mask_overlays(ds, held, inputs.refined, names[0], names[1], n)
        missing = [nm for nm in names if nm not in thresholds]
        if missing:
            raise ConfigError(f"no seed threshold for refined runs {missing}",
                              fix="list every refined run among ReportInputs.runs")
        shown = refined.render_mask_overlays(ds, held, inputs.refined, {nm: thresholds[nm] for nm in names}, chosen)
        for o in shown:
            o["png"] = data_uri(o["png"])
            o["miou"] = {k: pct(v) for k, v in o["miou"].items()}
    return {"split": seed_split, "heldout": held, "seg_names": list(base["segmentation"]), "rows": rows,
            "protocol": protocol, "overlays": shown, "baseline": names[0],
            "other": names[1] if len(names) > 1 else None}


def _environment() -> Environment:
    return Environment(loader=PackageLoader("woodseg.report", "templates"),
                       autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("woodseg")
    except Exception:  # pragma: no cover - not installed
        return "dev"
