"""The analysis report: one self-contained HTML page whose numbers are those of the runs' eval.json.

Two tiny runs (a baseline and a W-OoD run started from it, 1 epoch each) get CAMs and an evaluation once
per module; the report is written once and checked section by section.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import re
import shutil

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from helpers import CLASSES, tiny_overrides
from woodseg.config import load_config
from woodseg.data.build import load_dataset
from woodseg.errors import ConfigError, DataError
from woodseg.evaluate.seeds import describe
from woodseg.evaluate.stage import eval_stage
from woodseg.report import ReportInputs, write_report
from woodseg.report.html import pct
from woodseg.report.overlays import ImageScore, choose
from woodseg.seeds.stage import cam_stage
from woodseg.train.classifier import train_classifier

BASE, WOOD = "baseline (CAM)", "W-OoD (paper)"
REVIEW = {"disc": {"reviewed": 10, "kept": 6, "rejected": 4, "r": 0.4, "cost": 10.0},
          "bar": {"reviewed": 8, "kept": 6, "rejected": 2, "r": 0.25, "cost": 8.0}, "simulated": True}


@pytest.fixture(scope="module")
def runs(tiny_voc, tmp_path_factory):
    out = tmp_path_factory.mktemp("report_runs")
    quiet = Console(file=io.StringIO())
    cfg_b = load_config(None, tiny_overrides(tiny_voc, out / "base", **{"wood.variant": "none", "name": "base"}))
    ckpt = train_classifier(cfg_b, progress=False)
    cfg_w = load_config(None, tiny_overrides(tiny_voc, out / "wood", **{"wood.variant": "paper", "name": "wood",
                                                                        "train.init_from": ckpt}))
    train_classifier(cfg_w, progress=False)
    for cfg in (cfg_b, cfg_w):
        cam_stage(cfg, progress=False)
        eval_stage(cfg, progress=False, console=quiet)
    return {"ds": load_dataset(cfg_b.data), "root": tiny_voc, "out": out,
            "runs": {BASE: out / "base", WOOD: out / "wood"}}


def _inputs(ctx, **kw):
    base = dict(title="tiny <report>", dataset=ctx["ds"], runs=ctx["runs"], baseline=BASE, compare=[WOOD],
                ood_paths=sorted((ctx["root"] / "ood").glob("*.jpg")), review=REVIEW,
                timings={"train baseline": 3.0, "train W-OoD": 75.5}, throughput={"train images/s": 21.25},
                notes={"benchmark": "spurious-context v1.0 (seed 0)", "machine": "test box"})
    base.update(kw)
    return ReportInputs(**base)


@pytest.fixture(scope="module")
def report(runs):
    path = write_report(_inputs(runs), runs["out"] / "report" / "report.html", n_overlays=3, tsne_max_per_group=8)
    return path, path.read_text(encoding="utf-8")


def _eval(runs, name):
    return json.loads((runs["runs"][name] / "eval" / "seeds.json").read_text())


def _section(page: str, ident: str) -> str:
    m = re.search(rf'<section id="{ident}">(.*?)</section>', page, re.S)
    assert m, f"section {ident} missing"
    return m.group(1)


def _rows(table: str) -> list[list[str]]:
    """Cell texts per body row (tags stripped; the delta spans are separated by a '|')."""
    body = re.search(r"<tbody>(.*?)</tbody>", table, re.S).group(1)
    rows = []
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
        rows.append([re.sub(r"\s*\|+\s*", "|", html.unescape(re.sub(r"<[^>]+>", "|", c))).strip("|").strip()
                     for c in cells])
    return rows


def test_report_is_one_self_contained_html_file(report):
    path, page = report
    assert path.is_file() and path.suffix == ".html"
    assert page.lstrip().startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not list(path.parent.glob(".*"))  # atomic write left no temporary file
    assert 'src="http' not in page and "href=\"http" not in page and "url(" not in page
    assert "<link" not in page and "<script" not in page and "@import" not in page
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', page)
    assert len(re.findall(r"<img", page)) == len(srcs)
    # curves, per-class, 3 overlays, t-SNE, training
    assert len(srcs) == 7
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True))) as im:
            im.load()
            assert im.format == "PNG" and im.width > 300 and im.height > 150
    assert "tiny &lt;report&gt;" in page  # the title is escaped
    assert "spurious-context v1.0 (seed 0)" in page and "test box" in page


def test_seed_tables_hold_the_numbers_of_eval_json_with_their_protocol(runs, report):
    _, page = report
    ev = {name: _eval(runs, name) for name in (BASE, WOOD)}
    seeds = _section(page, "seeds")
    for split in ("train", "val"):
        table = re.search(rf'<table class="seed-table" data-split="{split}">(.*?)</table>', seeds, re.S).group(1)
        rows = {r[0].split("|")[0].strip(): r for r in _rows(table)}
        assert set(rows) == {BASE, WOOD}
        b = ev[BASE][split]["best"]
        for name in (BASE, WOOD):
            best = ev[name][split]["best"]
            cells = rows[name][1:]
            for cell, key in zip(cells[:4], ("miou", "precision", "recall", "f1"), strict=True):
                value = cell.split("|")[0]
                assert value == f"{100 * best[key]:.1f}", (split, name, key)
                if name == WOOD:
                    assert cell.split("|")[1] == f"{100 * (best[key] - b[key]):+.1f}"
            assert cells[4] == f"{best['threshold']:.2f}"
        text = html.escape(describe(ev[BASE][split]["protocol"]), quote=False)
        assert f"<code>{text}</code>" in seeds.split(f'data-split="{split}"', 1)[1]
        assert "CRF off" in text and f"split {split}" in text
    # The held-out split is judged at the seed split's threshold, and the page says so.
    assert "fixed at the best threshold of split train" in seeds
    b, w = ev[BASE]["train"]["best"], ev[WOOD]["train"]["best"]
    summary = re.search(r'<div class="summary" id="summary">(.*?)</div>', page, re.S).group(1)
    assert (f"{WOOD} changes seed mIoU on split train from {pct(b['miou'])} to {pct(w['miou'])} "
            f"({100 * (w['miou'] - b['miou']):+.1f})") in html.unescape(summary)


def test_per_class_table_lists_every_class_sorted_by_improvement(runs, report):
    _, page = report
    sec = _section(page, "per-class")
    table = re.search(r'<table class="per-class-table">(.*?)</table>', sec, re.S).group(1)
    rows = _rows(table)
    labels = [r[0] for r in rows]
    assert sorted(labels) == sorted(["background", *CLASSES])
    b = _eval(runs, BASE)["train"]["best"]["per_class_iou"]
    w = _eval(runs, WOOD)["train"]["best"]["per_class_iou"]
    for r in rows:
        assert r[1] == pct(b[r[0]]) and r[2] == pct(w[r[0]])
    gains = [(w[k] - b[k]) if None not in (w[k], b[k]) else -math.inf for k in labels]
    assert gains == sorted(gains, reverse=True)
    assert "<img" in sec


def test_overlays_show_the_largest_differences_and_say_which_lost(report):
    _, page = report
    sec = _section(page, "overlays")
    figs = re.findall(r'<figure class="overlay" data-image="([^"]+)">(.*?)</figure>', sec, re.S)
    assert len(figs) == 3
    assert all(i.startswith("2000_") for i, _ in figs)
    gains = [float(re.search(r"\(([+-]\d+\.\d) for", body).group(1)) for _, body in figs]
    lost = ['class="tag loss"' in body for _, body in figs]
    won = [g for g, lo in zip(gains, lost, strict=True) if not lo]
    assert won == sorted(won, reverse=True)
    assert all(g < 0 for g, lo in zip(gains, lost, strict=True) if lo)
    assert "12 images of split train" in sec


def test_tsne_and_review_sections(report):
    _, page = report
    tsne = _section(page, "tsne")
    assert "<img" in tsne and "t-SNE" in tsne and "12 OoD images scanned" in tsne
    assert re.search(r'<table class="tsne-table">.*<td>\w+</td>', tsne, re.S)
    review = _section(page, "review")
    assert "simulated" in review.lower()
    total = [r for r in _rows(re.search(r"<table.*?</table>", review, re.S).group(0)) if r[0] == "total"][0]
    assert total == ["total", "18", "12", "6", "0.333", "18.0"]
    training = _section(page, "training")
    assert "<img" in training and "1 min 18 s" in training and "21.2" in training


def test_optional_sections_are_skipped_with_a_note(runs, tmp_path):
    out = write_report(_inputs(runs, ood_paths=(), review=None, timings={}, throughput={}),
                       tmp_path / "r.html", n_overlays=1)
    page = out.read_text()
    assert "Skipped: no OoD images were given" in _section(page, "tsne")
    assert "Skipped: no OoD review statistics" in _section(page, "review")
    assert len(re.findall(r'<figure class="overlay"', page)) == 1


def test_missing_eval_json_is_a_data_error_naming_it(runs, tmp_path):
    folder = tmp_path / "unjudged"
    shutil.copytree(runs["runs"][WOOD] / "classifier", folder / "classifier")
    with pytest.raises(DataError) as exc:
        write_report(_inputs(runs, runs={BASE: runs["runs"][BASE], WOOD: folder}), tmp_path / "r.html")
    msg = str(exc.value)
    assert str(folder / "eval" / "seeds.json") in msg and "woodseg eval" in msg
    assert not (tmp_path / "r.html").exists()


def test_split_without_masks_and_bad_names_are_clear_errors(runs, tmp_path):
    no_masks = dataclasses.replace(runs["ds"], mask_paths={})
    with pytest.raises(DataError, match="no pixel mask"):
        write_report(_inputs(runs, dataset=no_masks), tmp_path / "r.html")
    with pytest.raises(DataError, match="no seed evaluation for split 'train_aug'") as exc:
        write_report(_inputs(runs), tmp_path / "r.html", overlay_split="train_aug")
    assert "eval/seeds.json" in str(exc.value)
    with pytest.raises(ConfigError, match="baseline 'nope'"):
        write_report(_inputs(runs, baseline="nope"), tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_choose_is_deterministic_and_includes_losses():
    s = [ImageScore(f"i{k}", {"a": 0.5, "b": 0.5 + d}) for k, d in enumerate([0.1, -0.3, 0.2, 0.0, -0.1, 0.2])]
    picked = choose(s, "a", "b", 4)
    assert [(x.image_id, kind) for x, kind in picked] == [("i2", "gain"), ("i5", "gain"), ("i1", "loss"),
                                                         ("i4", "loss")]
    assert [x.image_id for x, _ in choose(s, "a", "b", 1)] == ["i2"]  # one slot: the best gain
    assert choose(s, "a", "b", 0) == []
    no_loss = [ImageScore("x", {"a": 0.1, "b": 0.2}), ImageScore("y", {"a": 0.1, "b": float("nan")})]
    assert [kind for _, kind in choose(no_loss, "a", "b", 5)] == ["gain", "gain"]
    assert np.isfinite([x.gain("a", "b") for x, _ in choose(no_loss, "a", "b", 5)]).all()


def test_best_threshold_at_the_end_of_the_sweep_is_flagged(tmp_path):
    from woodseg.report.html import _edge_warning
    from woodseg.report.runs import RunData

    def run(best):
        curve = [{"threshold": t, "miou": 0.1, "precision": 0.1, "recall": 0.1, "f1": 0.1} for t in (0.1, 0.2, 0.3)]
        sel = {"threshold_selection": "best mIoU over 3 thresholds on split train"}
        return RunData("r", tmp_path, {"train": {"protocol": sel, "curve": curve, "best": {"threshold": best}},
                                       "val": {"protocol": {"threshold_selection": "fixed at ..."}, "curve": curve,
                                               "best": {"threshold": best}}})

    assert "highest one swept (0.10–0.30)" in _edge_warning(run(0.3), "train")
    assert "lowest" in _edge_warning(run(0.1), "train")
    assert _edge_warning(run(0.2), "train") is None
    assert _edge_warning(run(0.3), "val") is None  # not chosen on that split


def test_tsne_without_any_confused_ood_image_still_embeds(runs, monkeypatch):
    """No OoD image predicted as the chosen class: the embedding holds only in-distribution points."""
    from woodseg.models.inference import Predictions
    from woodseg.report import tsne
    from woodseg.report.runs import load_run

    real = tsne._predict

    def never_confused(model, paths, device, batch_size):
        pred = real(model, paths, device, batch_size)
        logits = np.full_like(pred.logits, -10.0)
        logits[:, 0] = -5.0  # every image's top class is class 0, with p < 0.5
        return Predictions(pred.features, logits, pred.failed)

    monkeypatch.setattr(tsne, "_predict", never_confused)
    ds = runs["ds"]
    before, after = (load_run(name, path) for name, path in runs["runs"].items())
    result = tsne.feature_tsne(ds, before, after, sorted((runs["root"] / "ood").glob("*.jpg")), [CLASSES[1]],
                               max_per_group=8)
    assert result.counts[CLASSES[1]]["ood"] == 0
    assert result.counts[CLASSES[1]]["in"] > 0
    assert result.png is not None


def test_tsne_counts_do_not_depend_on_the_batch_size(runs, monkeypatch):
    """The t-SNE's forward passes take the caller's batch size; what it finds is the same at any size."""
    from woodseg.report import tsne
    from woodseg.report.runs import load_run

    seen: list[int] = []
    real = tsne._predict

    def recording(model, paths, device, batch_size):
        seen.append(batch_size)
        return real(model, paths, device, batch_size)

    monkeypatch.setattr(tsne, "_predict", recording)
    ds = runs["ds"]
    before, after = (load_run(name, path) for name, path in runs["runs"].items())
    ood = sorted((runs["root"] / "ood").glob("*.jpg"))
    one = tsne.feature_tsne(ds, before, after, ood, [CLASSES[1]], max_per_group=8, batch_size=1)
    five = tsne.feature_tsne(ds, before, after, ood, [CLASSES[1]], max_per_group=8, batch_size=5)
    assert set(seen) == {1, 5}
    assert one.counts == five.counts
