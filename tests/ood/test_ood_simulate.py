"""The simulated reviewer: the review done by an oracle through the store, with r and n/(1-r)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from ood_helpers import make_images, synthetic_ranked

from woodseg.ood.candidates import select_candidates
from woodseg.ood.review.store import ReviewSettings, ReviewStore
from woodseg.ood.simulate import effort_for_n, simulate_from_candidates, simulate_review


def test_review_until_n_kept_with_r_and_cost(tmp_path: Path):
    ranked = synthetic_ranked(tmp_path / "images", tmp_path / "ranked")
    store = ReviewStore.create(tmp_path / "r.sqlite", ranked, ReviewSettings(target_n=2))
    positives = {("img000.jpg", "cat"), ("img001.jpg", "dog"), ("img004.jpg", "dog")}
    asked: list[tuple[str, str]] = []

    def oracle(entry: str, cls: str) -> bool:
        asked.append((entry, cls))
        return (entry, cls) in positives

    out = simulate_review(store, oracle)
    # cat: img000 (pos) img003 img006 -> 3 looks, 2 kept, r = 1/3
    assert (out["cat"].reviewed, out["cat"].kept, out["cat"].rejected) == (3, 2, 1)
    assert out["cat"].r == pytest.approx(1 / 3) and out["cat"].cost == pytest.approx(3.0) and out["cat"].reached
    # dog: img000 was rejected for cat -> not shown again; img001 pos, img004 pos, img007 -> 1 kept, exhausted
    assert ("img000.jpg", "dog") not in asked
    assert (out["dog"].reviewed, out["dog"].kept, out["dog"].skipped_elsewhere, out["dog"].reached) == (3, 1, 1, False)
    assert out["dog"].cost == pytest.approx(2 / (1 - 2 / 3))
    assert out["train"].kept == 2 and out["train"].r == 0.0
    events = store.events()
    assert {e["reviewer"] for e in events} == {"simulated"} and len(events) == 8
    # the store's own progress agrees
    prog = store.progress()
    assert prog["cat"].kept == 2 and prog["dog"].rejected == 2
    # a second run redoes nothing
    again = simulate_review(store, oracle)
    assert again["cat"].reviewed == 0 and again["cat"].kept == 2 and len(store.events()) == 8


def test_from_candidates_in_process_and_flag_order_lowers_effort(tmp_path: Path):
    names = make_images(tmp_path / "imgs", 6)
    scores = np.array([[0.95], [0.9], [0.85], [0.8], [0.7], [0.6]], dtype=np.float32)
    compact = np.array([[0.9], [0.8], [0.1], [0.2], [0.1], [0.3]], dtype=np.float32)
    cands = select_candidates(scores, names, ["train"], 0.5, compactness=compact)
    truly_train = {names[0], names[1]}  # the compact ones really show a train
    oracle = lambda e, c: e in truly_train  # noqa: E731
    _, paper = simulate_from_candidates(cands, oracle, tmp_path / "a.sqlite", root=tmp_path / "imgs", target_n=3)
    _, demoted = simulate_from_candidates(cands, oracle, tmp_path / "b.sqlite", root=tmp_path / "imgs", target_n=3,
                                          settings=ReviewSettings(target_n=3, order="demote", flag="compactness"))
    assert (paper["train"].reviewed, paper["train"].rejected) == (5, 2)
    assert (demoted["train"].reviewed, demoted["train"].rejected) == (3, 0)
    assert demoted["train"].r < paper["train"].r and demoted["train"].cost < paper["train"].cost


def test_effort_for_n():
    e = effort_for_n([True, False, True, False, False], 2)
    assert (e.reviewed, e.kept, e.rejected, e.reached) == (4, 2, 2, True)
    assert e.r == 0.5 and e.cost == 4.0
    short = effort_for_n([True, True], 3)
    assert not short.reached and short.r == 1.0 and math.isinf(short.cost)
    assert short.to_json()["cost"] is None
