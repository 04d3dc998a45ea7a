"""Feature t-SNE before and after W-OoD training (paper Fig. 7).

For each chosen class: the penultimate features z of in-distribution images labelled with the class, and
of OoD images that the *baseline* classifier mistakes for that class (argmax of the class logits, or
p(c) >= 0.5). Both groups are embedded with the baseline ("before") and with the compared run's classifier
("after"); W-OoD should pull the OoD crosses away from the in-distribution dots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from woodseg.data.dataset import LabelledImageSet
from woodseg.errors import DataError
from woodseg.models.cam_net import load_classifier
from woodseg.models.inference import Predictions, predict_images
from woodseg.report.figures import TsnePanel, tsne_scatter
from woodseg.report.runs import RunData

CHUNK = 64  # images per predict_images call: bounds memory when image sizes are mixed
MIN_POINTS = 5


@dataclass
class TsneResult:
    png: bytes | None
    classes: list[str]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # class -> in / ood / ood_found
    n_ood: int = 0
    perplexity: dict[str, float] = field(default_factory=dict)
    note: str = ""


def _model(run: RunData, device: str):
    if not run.checkpoint.is_file():
        raise DataError(f"classifier checkpoint of run '{run.name}' does not exist (the t-SNE needs it)",
                        path=run.checkpoint, fix=f"train it (`woodseg train` with out_dir={run.folder}) "
                                                 "or leave ood_paths empty to skip the t-SNE")
    model, names = load_classifier(run.checkpoint, device)
    return model, names


def _predict(model, paths: Sequence[Path], device: str, batch_size: int) -> Predictions:
    feats, logits, failed = [], [], []
    for start in range(0, len(paths), CHUNK):
        p = predict_images(model, list(paths[start:start + CHUNK]), device=device, skip_bad=True,
                           batch_size=batch_size)
        feats.append(p.features)
        logits.append(p.logits)
        failed += [start + i for i in p.failed]
    return Predictions(np.concatenate(feats), np.concatenate(logits), failed)


def _subsample(idx: list[int], k: int, rng: np.random.Generator) -> list[int]:
    if len(idx) <= k:
        return idx
    return sorted(rng.choice(idx, size=k, replace=False).tolist())


def _embed(x: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    from sklearn.manifold import TSNE

    n = len(x)
    perplexity = float(max(2.0, min(30.0, (n - 1) / 3.0)))
    emb = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
               random_state=seed).fit_transform(x.astype(np.float64))
    return emb, perplexity


def feature_tsne(ds: LabelledImageSet, before: RunData, after: RunData, ood_paths: Sequence[Path],
                 classes: Sequence[str], max_per_group: int = 150, device: str = "cpu", seed: int = 0,
                 batch_size: int = 8) -> TsneResult:
    """Embed in-distribution and baseline-confused OoD features of ``classes`` with both classifiers
    (``batch_size`` images per forward pass)."""
    unknown = [c for c in classes if c not in ds.class_names]
    if unknown:
        raise DataError(f"t-SNE classes {unknown} are not in the class list ({', '.join(ds.class_names)})",
                        fix="pass tsne_classes from the dataset's classes")
    classes = list(classes)
    if not classes:
        return TsneResult(None, [], note="no class to show")
    ood_paths = [Path(p) for p in ood_paths]
    cidx = [ds.class_names.index(c) for c in classes]
    rng = np.random.default_rng(seed)
    model_b, names_b = _model(before, device)
    if tuple(names_b) != tuple(ds.class_names):
        raise DataError(f"classifier of run '{before.name}' was trained on {list(names_b)}, the dataset has "
                        f"{list(ds.class_names)}", path=before.checkpoint, fix="report runs made on this dataset")

    # OoD images the baseline mistakes for a chosen class.
    ood_pred = _predict(model_b, ood_paths, device, batch_size)
    c_all = ds.num_classes
    probs = 1.0 / (1.0 + np.exp(-ood_pred.logits[:, :c_all].astype(np.float64)))
    ok = np.isfinite(probs).all(1)
    top = np.where(ok, np.nan_to_num(probs, nan=-1.0).argmax(1), -1)
    ood_groups: dict[str, list[int]] = {c: [] for c in classes}
    for i in np.flatnonzero(ok):
        hits = [k for k in cidx if top[i] == k or probs[i, k] >= 0.5]
        if hits:
            k = top[i] if top[i] in hits else max(hits, key=lambda j: probs[i, j])
            ood_groups[ds.class_names[k]].append(int(i))

    # In-distribution images labelled with exactly one of the chosen classes (every split, each id once).
    ids: list[str] = []
    seen: set[str] = set()
    for split in sorted(ds.splits):
        for i in ds.splits[split]:
            if i not in seen and i in ds.labels:
                seen.add(i)
                ids.append(i)
    in_groups: dict[str, list[int]] = {c: [] for c in classes}
    for j, image_id in enumerate(ids):
        lab = ds.labels[image_id]
        hits = [k for k in cidx if lab[k] > 0]
        if len(hits) == 1:
            in_groups[ds.class_names[hits[0]]].append(j)

    counts: dict[str, dict[str, int]] = {}
    in_sel: list[tuple[int, str]] = []
    ood_sel: list[tuple[int, str]] = []
    for c in classes:
        a = _subsample(in_groups[c], max_per_group, rng)
        b = _subsample(ood_groups[c], max_per_group, rng)
        in_sel += [(j, c) for j in a]
        ood_sel += [(j, c) for j in b]
        counts[c] = {"in": len(a), "in_found": len(in_groups[c]), "ood": len(b), "ood_found": len(ood_groups[c])}
    n_total = len(in_sel) + len(ood_sel)
    if n_total < MIN_POINTS:
        return TsneResult(None, classes, counts, len(ood_paths),
                          note=f"only {n_total} features to embed (at least {MIN_POINTS} needed)")

    in_paths = [ds.image_path(ids[j]) for j, _ in in_sel]
    model_a, names_a = _model(after, device)
    groups = [(c, False) for _, c in in_sel] + [(c, True) for _, c in ood_sel]
    panels, perplexity = [], {}
    for label, run, model, ood_feats in (
        ("before", before, model_b, ood_pred.features[[j for j, _ in ood_sel]] if ood_sel else None),
        ("after", after, model_a, None),
    ):
        feats_in = _predict(model, in_paths, device, batch_size).features if in_paths else np.zeros((0, 1), np.float32)
        if ood_feats is None:
            ood_feats = (_predict(model, [ood_paths[j] for j, _ in ood_sel], device, batch_size).features if ood_sel
                         else np.zeros((0, feats_in.shape[1]), np.float32))
        parts = [f for f in (feats_in, ood_feats) if len(f)]  # either group may be empty
        x = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
        keep = np.isfinite(x).all(1)
        g = [gr for gr, k in zip(groups, keep, strict=True) if k]
        if keep.sum() < MIN_POINTS:
            return TsneResult(None, classes, counts, len(ood_paths),
                              note=f"only {int(keep.sum())} readable images to embed")
        emb, perplexity[label] = _embed(x[keep], seed)
        panels.append(TsnePanel(f"{label}: {run.name} classifier", emb, g))
    del model_b, model_a
    return TsneResult(tsne_scatter(panels, classes), classes, counts, len(ood_paths), perplexity)
