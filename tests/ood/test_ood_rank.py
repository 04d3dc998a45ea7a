"""The file-based ranking: one-shard run, resume after interruption, two shards merged, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ood_helpers import CLASSES, make_checkpoint

import woodseg.ood.rank as rank_mod
from woodseg.errors import ConfigError, DataError
from woodseg.models.cam_net import load_classifier
from woodseg.ood.pool import read_pool, write_pool
from woodseg.ood.rank import Shard, load_ranked, merge_parts, rank_shard
from woodseg.ood.scoring import score_pool_full

KW = dict(long_side=40, batch_size=3, device="cpu", progress=False, threshold=0.45, flags=("compactness",))


@pytest.fixture()
def pool(tmp_path: Path, image_dir: Path) -> Path:
    ood_ids = sorted(p.name for p in image_dir.iterdir())
    return write_pool(tmp_path / "pool.txt", ood_ids, root=image_dir, source="test")


@pytest.fixture(scope="module")
def reference(checkpoint: Path, image_dir: Path):
    """Scores of the whole pool computed in memory, to compare the file-based runs against."""
    model, names = load_classifier(checkpoint)
    from woodseg.data.ood_list import ood_from_folder

    return score_pool_full(model, ood_from_folder(image_dir), names, long_side=40, flags=("compactness",))


def _scores(out: Path) -> np.ndarray:
    with np.load(out / "scores.npz") as z:
        return z["scores"]


def test_single_shard_ranks_and_merges_by_itself(checkpoint, pool, tmp_path, reference):
    out = tmp_path / "ranked"
    assert rank_shard(checkpoint, pool, out, **KW) == out
    np.testing.assert_allclose(_scores(out), reference.scores, atol=2e-5)
    ranked = load_ranked(out)
    meta = json.loads((out / "ranked.json").read_text())
    assert ranked.class_names == CLASSES and meta["threshold"] == 0.45 and meta["flags"] == ["compactness"]
    ids = read_pool(pool).ids
    for c, name in enumerate(CLASSES):
        expect = sorted((i for i in range(len(ids)) if reference.scores[i, c] >= 0.45),
                        key=lambda i: (-reference.scores[i, c], ids[i]))
        got = ranked.candidates[name]
        assert [x.entry for x in got] == [ids[i] for i in expect]
        assert [x.rank for x in got] == list(range(1, len(got) + 1))
        for x in got:
            assert x.compactness == pytest.approx(float(reference.compactness[ids.index(x.entry), c]), abs=1e-5)
        csv_text = (out / meta["classes"][c]["file"]).read_text().splitlines()
        assert csv_text[0] == "rank,path,image_id,p,compactness,stability" and len(csv_text) == len(got) + 1
    assert sum(len(v) for v in ranked.candidates.values()) > 0, "threshold chosen so some candidates exist"


def test_interrupted_run_resumes_where_it_stopped(checkpoint, pool, tmp_path, reference, monkeypatch):
    out = tmp_path / "ranked"
    real = rank_mod.iter_scores
    scored: list[int] = []
    stop_after = [2]

    def counting(*args, **kwargs):
        for k, ch in enumerate(real(*args, **kwargs)):
            if k == stop_after[0]:
                raise KeyboardInterrupt
            scored.extend(ch.indices.tolist())
            yield ch

    monkeypatch.setattr(rank_mod, "iter_scores", counting)
    kw = {**KW, "batch_size": 1}  # chunks of 4 images: 12 images -> 3 chunks
    with pytest.raises(KeyboardInterrupt):
        rank_shard(checkpoint, pool, out, flush_every=1000, **kw)  # the buffer is flushed on the way out
    part = out / "parts" / "shard-000-of-001"
    assert not json.loads((part / "manifest.json").read_text())["finished"]
    assert not (out / "ranked.json").exists()
    assert scored == list(range(8))
    assert len(list(part.glob("chunk-*.npz"))) == 1
    scored.clear()
    stop_after[0] = -1
    rank_shard(checkpoint, pool, out, flush_every=1000, **kw)
    assert scored == [8, 9, 10, 11], "the second run scores only what is missing"
    np.testing.assert_allclose(_scores(out), reference.scores, atol=2e-5)
    assert json.loads((part / "manifest.json").read_text())["done"] == 12
    scored.clear()
    rank_shard(checkpoint, pool, out, **kw)  # a finished shard re-run does nothing but re-merge
    assert scored == []


def test_resume_with_other_settings_is_refused(checkpoint, pool, tmp_path):
    out = tmp_path / "ranked"
    rank_shard(checkpoint, pool, out, **KW)
    with pytest.raises(DataError, match="long_side") as exc:
        rank_shard(checkpoint, pool, out, **{**KW, "long_side": 32})
    assert "new --out" in str(exc.value)


def test_two_shards_merged_equal_one_run(checkpoint, pool, tmp_path, reference):
    out = tmp_path / "ranked"
    p0 = rank_shard(checkpoint, pool, out, shard=Shard(0, 2), **KW)
    assert p0.name == "shard-000-of-002" and not (out / "ranked.json").exists()
    with np.load(next(p0.glob("chunk-*.npz"))) as z:
        assert z["indices"].tolist() == [0, 2, 4, 6, 8, 10]
    with pytest.raises(DataError, match=r"shard\(s\) \[1\] of 2 are missing"):
        merge_parts(out)
    rank_shard(checkpoint, pool, out, shard=Shard(1, 2), **KW)
    merged = merge_parts(out)
    np.testing.assert_allclose(_scores(out), reference.scores, atol=2e-5)
    one = tmp_path / "one"
    rank_shard(checkpoint, pool, one, **KW)
    assert {k: [c.entry for c in v] for k, v in merged.candidates.items()} == \
        {k: [c.entry for c in v] for k, v in load_ranked(one).candidates.items()}
    # re-thresholding at merge time needs no rescoring
    strict = merge_parts(out, threshold=0.99)
    assert all(not v for v in strict.candidates.values())


def test_merge_refuses_parts_from_another_checkpoint(checkpoint, pool, tmp_path):
    out = tmp_path / "ranked"
    rank_shard(checkpoint, pool, out, shard=Shard(0, 2), **KW)
    other = make_checkpoint(tmp_path / "other.pt", seed=5)
    rank_shard(other, pool, out, shard=Shard(1, 2), **KW)
    with pytest.raises(DataError, match="checkpoint_sha") as exc:
        merge_parts(out)
    assert "shard-000-of-002 vs shard-001-of-002" in str(exc.value)


def test_merge_refuses_another_pool_and_unfinished_parts(checkpoint, pool, tmp_path, image_dir):
    out = tmp_path / "ranked"
    rank_shard(checkpoint, pool, out, shard=Shard(0, 2), **KW)
    other_pool = write_pool(tmp_path / "other" / "pool.txt", sorted(p.name for p in image_dir.iterdir())[:6],
                            root=image_dir, source="test")
    rank_shard(checkpoint, other_pool, out, shard=Shard(1, 2), **KW)
    with pytest.raises(DataError, match="pool_fingerprint"):
        merge_parts(out)

    out2 = tmp_path / "ranked2"
    rank_shard(checkpoint, pool, out2, shard=Shard(0, 2), **KW)
    rank_shard(checkpoint, pool, out2, shard=Shard(1, 2), **KW)
    m = out2 / "parts" / "shard-001-of-002" / "manifest.json"
    m.write_text(json.dumps({**json.loads(m.read_text()), "finished": False}))
    with pytest.raises(DataError, match="did not finish"):
        merge_parts(out2)


def test_changed_pool_file_and_missing_chunks_are_caught(checkpoint, pool, tmp_path):
    out = tmp_path / "ranked"
    rank_shard(checkpoint, pool, out, **KW)
    chunk = next((out / "parts" / "shard-000-of-001").glob("chunk-*.npz"))
    chunk.write_bytes(b"garbage")
    with pytest.raises(DataError, match="chunk file is unreadable") as exc:
        merge_parts(out)
    assert chunk.name in str(exc.value)
    chunk.unlink()
    with pytest.raises(DataError, match="12 pool images have no score"):
        merge_parts(out)
    rank_shard(checkpoint, pool, out, **KW)  # re-running scores the lost chunk again
    pool.write_text(pool.read_text() + "extra.jpg\n")
    with pytest.raises(DataError, match="pool file changed"):
        merge_parts(out)


@pytest.mark.parametrize("text", ["2/2", "a/b", "1", "-1/3"])
def test_bad_shard_specs(text):
    with pytest.raises(ConfigError, match="bad shard"):
        Shard.parse(text)
    assert Shard.parse("1/3").positions(7) == [1, 4]


def test_no_parts_and_no_ranking(tmp_path):
    with pytest.raises(DataError, match="no shard parts"):
        merge_parts(tmp_path)
    with pytest.raises(DataError, match="no ranked.json"):
        load_ranked(tmp_path)


def test_checkpoint_naming_a_class_twice_is_refused_before_scoring(pool, tmp_path):
    ckpt = make_checkpoint(tmp_path / "dup.pt", classes=("cat", "dog", "cat"))
    with pytest.raises(DataError) as exc:
        rank_shard(ckpt, pool, tmp_path / "ranked", **KW)
    assert "'cat'" in str(exc.value) and "dup.pt" in str(exc.value)
    assert not (tmp_path / "ranked" / "candidates").exists()


def test_ranking_naming_a_class_twice_is_refused_before_review(checkpoint, pool, tmp_path):
    out = tmp_path / "ranked"
    rank_shard(checkpoint, pool, out, **KW)
    meta = json.loads((out / "ranked.json").read_text())
    meta["class_names"] = [CLASSES[0], CLASSES[1], CLASSES[0]]
    (out / "ranked.json").write_text(json.dumps(meta))
    with pytest.raises(DataError) as exc:
        load_ranked(out)
    assert f"'{CLASSES[0]}'" in str(exc.value) and "ranked.json" in str(exc.value)


@pytest.mark.slow
def test_torchrun_ranks_exact_shards_and_rank0_merges(checkpoint, pool, tmp_path):
    """`torchrun --nproc_per_node=2 -m woodseg ood rank`: each process its share, rank 0 merges, same candidates."""
    import os
    import subprocess
    import sys

    from helpers import torchrun_path

    torchrun = torchrun_path()
    common = ["--checkpoint", str(checkpoint), "--pool", str(pool), "--threshold", "0.45",
              "wood.ood_long_side=40", "runtime.score_batch_size=3", "runtime.device=cpu", "runtime.threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two, one = tmp_path / "two", tmp_path / "one"
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "woodseg", "ood", "rank",
                           "--out", str(two), *common], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert sorted(p.name for p in (two / "parts").iterdir()) == ["shard-000-of-002", "shard-001-of-002"]
    assert proc.stdout.count("ranked candidates of 2 processes") == 1  # rank 0 alone merges
    proc = subprocess.run([sys.executable, "-m", "woodseg", "ood", "rank", "--out", str(one), *common],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert {k: [c.entry for c in v] for k, v in load_ranked(two).candidates.items()} == \
        {k: [c.entry for c in v] for k, v in load_ranked(one).candidates.items()}
    np.testing.assert_allclose(_scores(two), _scores(one), atol=2e-5)
