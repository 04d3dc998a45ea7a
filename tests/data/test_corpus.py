"""The pretraining corpus: deterministic, category-consistent, cached atomically in ImageFolder layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from woodseg.data.benchmark.corpus import (
    CORPUS_VERSION,
    CorpusSpec,
    category,
    category_name,
    check_corpus,
    ensure_corpus,
    render,
)


def test_render_is_a_function_of_spec_split_category_and_index() -> None:
    spec = CorpusSpec.tiny()
    a = render(spec, "train", 1, 3)
    assert a.shape == (48, 48, 3) and a.dtype == np.uint8
    assert np.array_equal(a, render(spec, "train", 1, 3))
    assert not np.array_equal(a, render(spec, "train", 1, 4))
    assert not np.array_equal(a, render(spec, "val", 1, 3))
    assert not np.array_equal(a, render(CorpusSpec.tiny(seed=1), "train", 1, 3))


def test_categories_differ_and_keep_their_template() -> None:
    spec = CorpusSpec()
    cats = [category(spec, k) for k in range(spec.n_categories)]
    assert category(spec, 5) == cats[5]  # the template does not depend on what was drawn before
    assert len({c.parts for c in cats}) == spec.n_categories
    assert len({c.pattern for c in cats}) > 4


def test_ensure_corpus_writes_imagefolder_layout_once(tmp_path) -> None:
    spec = CorpusSpec.tiny()
    root = ensure_corpus(spec, tmp_path)
    assert root.name == spec.folder_name() and check_corpus(root, spec) is None
    for split, n in (("train", spec.n_train), ("val", spec.n_val)):
        folders = sorted(p.name for p in (root / split).iterdir())
        assert folders == [category_name(k) for k in range(spec.n_categories)]
        assert all(len(list((root / split / f).glob("*.jpg"))) == n for f in folders)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["version"] == CORPUS_VERSION and manifest["spec"] == spec.to_dict()
    stamp = (root / "manifest.json").stat().st_mtime_ns
    assert ensure_corpus(spec, tmp_path) == root
    assert (root / "manifest.json").stat().st_mtime_ns == stamp  # reused, not regenerated
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_a_corpus_of_another_spec_is_not_reused(tmp_path) -> None:
    root = ensure_corpus(CorpusSpec.tiny(), tmp_path)
    other = CorpusSpec.tiny(n_train=5)
    assert check_corpus(root, other) is not None
    assert ensure_corpus(other, tmp_path) != root


def test_invalid_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="CorpusSpec"):
        CorpusSpec(n_categories=1)
