"""select_candidates: p(c) >= threshold per class, ranked by p(c); the per-class CSV round trip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from woodseg.errors import DataError
from woodseg.ood.candidates import (
    class_file_name,
    read_candidates_csv,
    select_candidates,
    write_candidates_csv,
)


def test_threshold_rank_and_multi_class_membership():
    ids = ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    scores = np.array([[0.9, 0.2], [0.5, 0.7], [0.49, 0.95], [np.nan, np.nan]], dtype=np.float32)
    comp = np.full_like(scores, 0.3)
    out = select_candidates(scores, ids, ["rail", "sea"], 0.5, compactness=comp)
    assert [(c.entry, c.rank) for c in out["rail"]] == [("a.jpg", 1), ("b.jpg", 2)]
    assert [c.entry for c in out["sea"]] == ["c.jpg", "b.jpg"]  # b is a candidate of both classes
    assert out["sea"][0].p == pytest.approx(0.95) and out["sea"][0].compactness == pytest.approx(0.3)
    assert math.isnan(out["sea"][0].stability)
    assert out["rail"][0].image_id == "a"
    assert select_candidates(scores, ids, ["rail", "sea"], 0.99) == {"rail": [], "sea": []}


def test_ties_are_ordered_by_path_and_shapes_checked():
    scores = np.array([[0.6], [0.6], [0.8]], dtype=np.float32)
    out = select_candidates(scores, ["z.jpg", "b.jpg", "m.jpg"], ["c"])
    assert [c.entry for c in out["c"]] == ["m.jpg", "b.jpg", "z.jpg"]
    with pytest.raises(ValueError, match="does not match"):
        select_candidates(scores, ["a"], ["c"])
    with pytest.raises(ValueError, match="threshold"):
        select_candidates(scores, ["a", "b", "c"], ["c"], 1.5)


def test_csv_round_trip_and_safe_names(tmp_path: Path):
    scores = np.array([[0.9], [0.7]], dtype=np.float32)
    cands = select_candidates(scores, ["x/a.jpg", "b, c.jpg"], ["potted plant"], 0.5,
                              stability=np.array([[0.8], [np.nan]]))["potted plant"]
    name = class_file_name(15, "potted plant")
    assert name == "15_potted_plant.csv" and class_file_name(0, "../..") == "00_class.csv"
    write_candidates_csv(tmp_path / name, cands)
    back = read_candidates_csv(tmp_path / name, "potted plant")
    assert [(c.entry, c.rank, round(c.p, 6)) for c in back] == [(c.entry, c.rank, round(c.p, 6)) for c in cands]
    assert back[0].stability == pytest.approx(0.8) and math.isnan(back[1].stability)
    (tmp_path / "bad.csv").write_text("rank,path\n1,a.jpg\n")
    with pytest.raises(DataError, match=r"lacks column\(s\) \['p'\]"):
        read_candidates_csv(tmp_path / "bad.csv", "c")
