"""The report's figures, drawn with matplotlib's object API on the Agg canvas and returned as PNG bytes.

No pyplot: nothing touches the global backend or figure registry, so the report can be made from any
thread or process (and from a headless server) without side effects.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from woodseg.data.palette import voc_palette

BASELINE_COLOUR = "#7f7f7f"
RUN_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
DPI = 110


def run_colours(names: Sequence[str], baseline: str) -> dict[str, str]:
    """Grey for the baseline ("before"), distinct colours for the others, stable in the given order."""
    out, k = {}, 0
    for n in names:
        if n == baseline:
            out[n] = BASELINE_COLOUR
        else:
            out[n] = RUN_COLOURS[k % len(RUN_COLOURS)]
            k += 1
    return out


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------- curves


@dataclass
class Curve:
    name: str
    thresholds: np.ndarray
    miou: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    best_threshold: float
    colour: str


def threshold_curves(curves: Sequence[Curve], split: str) -> bytes:
    """mIoU, precision and recall (%) vs the background threshold, one line per run, best threshold marked."""
    fig = new_figure(12.5, 3.9)
    axes = fig.subplots(1, 3, sharex=True)
    for ax, key, label in zip(axes, ("miou", "precision", "recall"), ("mIoU", "precision", "recall"), strict=True):
        for c in curves:
            y = 100 * getattr(c, key)
            ax.plot(c.thresholds, y, color=c.colour, lw=1.8, label=c.name)
            j = int(np.argmin(np.abs(c.thresholds - c.best_threshold)))
            ax.plot([c.thresholds[j]], [y[j]], "o", color=c.colour, ms=6, mec="black", mew=0.6)
        ax.set_title(f"{label} vs threshold (split {split})")
        ax.set_xlabel("background threshold")
        ax.set_ylabel(f"{label} (%)")
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=c.colour, lw=1.8, label=c.name) for c in curves]
    handles.append(Line2D([], [], ls="", marker="o", color="white", mec="black", label="best-mIoU threshold"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5), frameon=False)
    return png_bytes(fig)


# ------------------------------------------------------------------------------------------- per class


def per_class_bars(labels: Sequence[str], series: Sequence[tuple[str, np.ndarray, str]], split: str,
                   delta_of: str | None = None) -> bytes:
    """Grouped bars of per-class IoU (%) per run (paper Fig. 6); ``labels`` already sorted by improvement.

    ``series`` is (run name, IoU per label in [0, 1] with NaN for absent classes, colour); when
    ``delta_of`` is given the improvement of that run over the first series is written above each group.
    """
    n, k = len(labels), len(series)
    fig = new_figure(max(7.0, 0.55 * n * max(1, k) / 2 + 2.5), 4.6)
    ax = fig.subplots()
    x = np.arange(n)
    width = 0.8 / max(k, 1)
    for i, (name, vals, colour) in enumerate(series):
        v = 100 * np.nan_to_num(np.asarray(vals, dtype=np.float64), nan=0.0)
        ax.bar(x - 0.4 + width * (i + 0.5), v, width, color=colour, label=name, edgecolor="white", lw=0.4)
    if delta_of is not None and len(series) > 1:
        base = np.asarray(series[0][1], dtype=np.float64)
        other = np.asarray(dict((s[0], s[1]) for s in series)[delta_of], dtype=np.float64)
        stacked = np.vstack([np.asarray(s[1], dtype=np.float64) for s in series])
        top = 100 * np.where(np.isnan(stacked), -np.inf, stacked).max(axis=0)  # -inf: absent everywhere
        for xi, d, t in zip(x, 100 * (other - base), top, strict=True):
            if np.isfinite(d):
                ax.text(xi, (t if np.isfinite(t) else 0) + 1.5, f"{d:+.1f}", ha="center", va="bottom", fontsize=8,
                        color="#1a7f37" if d >= 0 else "#b42318")
    ax.set_xticks(x, labels, rotation=45 if n > 6 else 0, ha="right" if n > 6 else "center")
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 110)
    title = f"Per-class seed IoU on split {split}"
    if delta_of:
        title += f"\nsorted by the gain of {delta_of} (numbers above the bars: gain in %p)"
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", frameon=False, ncol=len(series))
    return png_bytes(fig)


# -------------------------------------------------------------------------------------------- overlays


def colour_labels(labels: np.ndarray) -> np.ndarray:
    """VOC palette colours of a label map (255 = ignore in its usual cream colour)."""
    return voc_palette()[labels.astype(np.uint8)]


def heat_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image blended with a jet-coloured heat map in [0, 1] (IRN/W-OoD figures' look)."""
    rgb = colormaps["jet"](np.clip(heat, 0, 1))[..., :3]
    out = (1 - alpha) * image.astype(np.float64) / 255 + alpha * rgb
    return np.clip(out, 0, 1)


@dataclass
class OverlayPanel:
    run: str
    heat: np.ndarray  # [H, W] in [0, 1]
    seed: np.ndarray  # [H, W] labels
    threshold: float
    miou: float


def label_legend(fig: Figure, label_maps: Sequence[np.ndarray], label_names: Sequence[str]) -> None:
    """A legend under the figure for every label value that appears in ``label_maps`` (VOC palette colours)."""
    present = sorted({int(v) for m in label_maps for v in np.unique(m)})
    pal = voc_palette()
    handles = [Patch(facecolor=pal[v] / 255, edgecolor="black", lw=0.4,
                     label=label_names[v] if v < len(label_names) else ("ignore" if v == 255 else str(v)))
               for v in present]
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), 8),
               frameon=False, fontsize=8, handlelength=1.2, borderaxespad=0.1)


def overlay_row(image: np.ndarray, gt: np.ndarray, panels: Sequence[OverlayPanel], label_names: Sequence[str],
                image_id: str) -> bytes:
    """Image, ground truth, then per run its CAM over the image and its thresholded seed (paper Fig. 3).

    Laid out by hand (no constrained layout): one of these is drawn per shown image, so it must be quick.
    """
    h, w = gt.shape
    ncol = 2 + 2 * len(panels)
    th = 2.0  # tile height, inches
    tw = th * min(max(w / h, 0.5), 2.0)
    gap, left, cbar = 0.08, 0.08, 0.75 if panels else 0.1
    top, bottom = 0.5, 0.42
    width = left + ncol * tw + (ncol - 1) * gap + cbar
    height = top + th + bottom
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = [fig.add_axes(((left + k * (tw + gap)) / width, bottom / height, tw / width, th / height))
            for k in range(ncol)]
    axes[0].imshow(image, aspect="auto")
    axes[0].set_title(f"image {image_id}", fontsize=9)
    axes[1].imshow(colour_labels(gt), interpolation="nearest", aspect="auto")
    axes[1].set_title("ground truth", fontsize=9)
    for i, p in enumerate(panels):
        a, b = axes[2 + 2 * i], axes[3 + 2 * i]
        size = min(9.0, max(6.0, 9.0 * tw / ((len(p.run) + 12) * 0.068)))  # long run names: smaller titles
        a.imshow(heat_overlay(image, p.heat), aspect="auto")
        a.set_title(f"{p.run}: CAM", fontsize=size)
        b.imshow(colour_labels(p.seed), interpolation="nearest", aspect="auto")
        b.set_title(f"{p.run}: seed @{p.threshold:.2f}\nimage mIoU {100 * p.miou:.1f}", fontsize=size)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    label_legend(fig, [gt, *(p.seed for p in panels)], label_names)
    if panels:
        x0 = left + ncol * tw + (ncol - 1) * gap + 0.12
        cax = fig.add_axes((x0 / width, bottom / height, 0.12 / width, th / height))
        cb = fig.colorbar(ScalarMappable(Normalize(0, 1), "jet"), cax=cax)
        cb.set_label("CAM score", fontsize=8)
        cb.ax.tick_params(labelsize=7)
    return png_bytes(fig)


# ------------------------------------------------------------------------------------------------ t-SNE


@dataclass
class TsnePanel:
    title: str
    embedding: np.ndarray  # [N, 2]
    groups: list[tuple[str, bool]]  # per point: (class, is OoD)


def tsne_scatter(panels: Sequence[TsnePanel], classes: Sequence[str]) -> bytes:
    """Side-by-side t-SNE maps; colour = class, filled circle = in-distribution, cross = OoD (paper Fig. 7)."""
    cmap = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
    colour = {c: cmap[i % len(cmap)] for i, c in enumerate(classes)}
    fig = new_figure(5.2 * len(panels) + 0.5, 5.4)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, p in zip(axes, panels, strict=True):
        g = np.array([f"{c}|{int(o)}" for c, o in p.groups])
        for c in classes:
            for ood in (False, True):
                m = g == f"{c}|{int(ood)}"
                if not m.any():
                    continue
                if ood:
                    ax.scatter(p.embedding[m, 0], p.embedding[m, 1], marker="x", s=28, lw=1.3, color=colour[c],
                               alpha=0.85)
                else:
                    ax.scatter(p.embedding[m, 0], p.embedding[m, 1], marker="o", s=22, color=colour[c], alpha=0.55,
                               edgecolors="none")
        ax.set_title(p.title)
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.set_xticks([])
        ax.set_yticks([])
    shown = {g for p in panels for g in p.groups}
    handles = []
    for c in classes:
        if (c, False) in shown:
            handles.append(Line2D([], [], ls="", marker="o", color=colour[c], alpha=0.7,
                                  label=f"{c} (in-distribution)"))
        if (c, True) in shown:
            handles.append(Line2D([], [], ls="", marker="x", color=colour[c], mew=1.3, label=f"OoD predicted as {c}"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), frameon=False)
    return png_bytes(fig)


# --------------------------------------------------------------------------------------------- training


@dataclass
class TrainingSeries:
    run: str
    steps: np.ndarray
    series: dict[str, np.ndarray]  # "loss" first, then the terms


def training_curves(runs: Sequence[TrainingSeries]) -> bytes:
    """Loss and its weighted terms per step, one panel per run (terms differ between variants)."""
    n = len(runs)
    fig = new_figure(min(5.2 * n, 15.5) + 0.3, 3.9)
    axes = np.atleast_1d(fig.subplots(1, n))
    palette = ("black", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")
    for ax, r in zip(axes, runs, strict=True):
        window = max(1, len(r.steps) // 50)  # long runs: raw values faint, a running mean on top
        for i, (name, y) in enumerate(r.series.items()):
            c = palette[i % len(palette)]
            style = dict(lw=2.0 if name == "loss" else 1.3, ls="-" if name == "loss" else "--" if i % 2 else "-.")
            if window > 1:
                ax.plot(r.steps, y, color=c, lw=0.6, alpha=0.25)
                ax.plot(r.steps, running_mean(y, window), color=c, label=f"{name} (mean of {window})", **style)
            else:
                ax.plot(r.steps, y, color=c, label=name, **style)
        ax.set_title(f"{r.run}: training loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (weighted terms)")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    return png_bytes(fig)


def running_mean(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` points (fewer at the start), NaN-aware."""
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(y)
    c = np.concatenate([[0.0], np.cumsum(np.where(ok, y, 0.0))])
    n = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(0, idx - window)
    cnt = n[idx] - n[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, (c[idx] - c[lo]) / np.maximum(cnt, 1), np.nan)
