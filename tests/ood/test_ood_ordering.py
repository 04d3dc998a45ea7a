"""Review orders: the paper's p(c) order and the flag-based ones that lower r."""

from __future__ import annotations

import math

import pytest

from woodseg.errors import ConfigError
from woodseg.ood.candidates import Candidate
from woodseg.ood.ordering import is_flagged, order_candidates


def _cands():
    # (entry, p, compactness): b and d look like objects (compact), a/c/e like diffuse cues
    spec = [("a", 0.95, 0.1), ("b", 0.9, 0.8), ("c", 0.8, math.nan), ("d", 0.7, 0.6), ("e", 0.6, 0.2)]
    return [Candidate(f"{e}.jpg", "train", p, r, compactness=k) for r, (e, p, k) in enumerate(spec, 1)]


def _entries(cands):
    return [c.entry[0] for c in cands]


def test_paper_order_is_p_descending_whatever_the_input_order():
    assert _entries(order_candidates(list(reversed(_cands())))) == ["a", "b", "c", "d", "e"]


def test_demote_hide_and_flagged_first():
    c = _cands()
    assert _entries(order_candidates(c, "demote", "compactness", 0.5)) == ["a", "c", "e", "b", "d"]
    assert _entries(order_candidates(c, "hide", "compactness", 0.5)) == ["a", "c", "e"]
    assert _entries(order_candidates(c, "flagged-first", "compactness", 0.5)) == ["b", "d", "a", "c", "e"]
    assert _entries(order_candidates(c, "demote", "compactness", 0.7)) == ["a", "c", "d", "e", "b"]


def test_missing_evidence_is_never_flagged_and_bad_modes_fail():
    c = _cands()
    assert not is_flagged(c[2], "compactness", 0.0)
    assert not is_flagged(c[1], "stability", 0.0)  # stability not computed
    with pytest.raises(ConfigError, match="unknown review order"):
        order_candidates(c, "random")
    with pytest.raises(ConfigError, match="needs a flag"):
        order_candidates(c, "demote")
