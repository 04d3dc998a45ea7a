"""``woodseg run --from ir_labels --to eval_masks`` on a tiny trained run: Table 2's Seed, +CRF and Mask
numbers with their protocols; an unchanged re-run re-reads; masks not made for the seed split are refused."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from helpers import tiny_overrides
from refine_helpers import REFINE, seeded_run
from woodseg.cli import app
from woodseg.errors import DataError
from woodseg.evaluate.products import eval_masks_stage
from woodseg.evaluate.stage import eval_stage


def test_run_from_ir_labels_to_eval_masks(tiny_voc, tmp_path):
    out = tmp_path / "run"
    cfg = seeded_run(tiny_voc, out)
    seeds = eval_stage(cfg, progress=False)
    args = ["run", "--from", "ir_labels", "--to", "eval_masks", "-q", *tiny_overrides(tiny_voc, out, **REFINE)]
    res = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "Table 2 row" in res.output and "+CRF" in res.output and "Mask" in res.output
    assert (out / "irn" / "last.pt").is_file() and len(list((out / "masks").glob("*.png"))) == 24

    masks = json.loads((out / "eval" / "masks.json").read_text())
    crf = json.loads((out / "eval" / "seeds-crf.json").read_text())
    assert set(masks) == {"run", "train"}  # val: no masks made for it (walk.splits default)
    m = masks["train"]
    assert m["protocol"]["split"] == "train" and m["protocol"]["n_images"] == 12
    assert m["protocol"]["made_with"]["seed_power"] == 1.5 and m["protocol"]["crf"] is False
    assert set(m["scores"]["per_class_iou"]) == {"background", "disc", "bar", "ring"}
    assert 0.3 < m["scores"]["miou"] <= 1.0  # masks from mask-like seeds find the shapes
    c = crf["train"]
    assert c["protocol"]["crf"] is True and c["protocol"]["threshold"] == seeds["train"]["best"]["threshold"]
    assert 0.3 < c["scores"]["miou"] <= 1.0

    stamp = (out / "eval" / "masks.json").stat().st_mtime_ns
    again = eval_masks_stage(cfg, progress=False)
    assert (out / "eval" / "masks.json").stat().st_mtime_ns == stamp and again["masks"] == masks

    index = out / "masks" / "index.json"
    index.write_text(json.dumps({**json.loads(index.read_text()), "splits": ["train_aug"]}))
    cfg.data.seed_split = "val"
    with pytest.raises(DataError, match="not the seed split 'val'"):
        eval_masks_stage(cfg, progress=False)
