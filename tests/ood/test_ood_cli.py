"""`woodseg ood ...` end to end on tiny inputs: pools, rank (one and two shards), review setup, status, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ood_helpers import make_images
from typer.testing import CliRunner

import woodseg.ood.review.app as app_mod
from woodseg.cli import app
from woodseg.errors import ConfigError, DataError

runner = CliRunner()
COMMANDS = ["mapping", "pool-openimages", "pool-folder", "rank", "merge", "review", "status", "export"]


def _ok(args: list[str]) -> str:
    res = runner.invoke(app, ["ood", *args])
    assert res.exit_code == 0, (args, res.output, res.exception)
    return res.output


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help(cmd: str):
    out = _ok([cmd, "--help"])
    assert "Usage" in out and len(out) > 200


def test_folder_pool_rank_review_status_export(tmp_path: Path, image_dir: Path, checkpoint: Path, monkeypatch):
    pool = tmp_path / "pool.txt"
    _ok(["pool-folder", str(image_dir), "--out", str(pool)])
    assert len(pool.read_text().splitlines()) == 12
    rank = ["rank", "--checkpoint", str(checkpoint), "--pool", str(pool), "--threshold", "0.45", "--flag", "compactness",
            "wood.ood_long_side=32", "runtime.score_batch_size=4", "runtime.device=cpu", "runtime.workers=0"]
    out = _ok([*rank, "--out", str(tmp_path / "ranked")])
    assert "woodseg ood review" in out
    one = json.loads((tmp_path / "ranked" / "ranked.json").read_text())
    _ok([*rank, "--out", str(tmp_path / "sharded"), "--shard", "0/2"])
    _ok([*rank, "--out", str(tmp_path / "sharded"), "--shard", "1/2"])
    _ok(["merge", str(tmp_path / "sharded")])
    two = json.loads((tmp_path / "sharded" / "ranked.json").read_text())
    assert [c["count"] for c in one["classes"]] == [c["count"] for c in two["classes"]]
    assert sum(c["count"] for c in one["classes"]) > 0

    served = {}
    monkeypatch.setattr(app_mod, "serve", lambda store, **kw: served.update(store=store, **kw))
    db = tmp_path / "review.sqlite"
    _ok(["review", "--ranked", str(tmp_path / "ranked"), "--db", str(db), "--target-n", "3", "--reviewer", "ann"])
    store = served["store"]
    assert served["host"] == "127.0.0.1" and served["token"] is None and served["reviewer"] == "ann"
    assert store.settings.target_n == 3
    first = store.states()[0]
    store.decide(first.id, "keep", "ann")
    _ok(["review", "--db", str(db), "--order", "demote", "--flag", "compactness"])  # resume, new order
    assert served["store"].settings.order == "demote" and served["store"].settings.target_n == 3
    status = _ok(["status", "--db", str(db)])
    assert first.class_name in status and "n/(1-r)" in status
    _ok(["export", "--db", str(db), "--out", str(tmp_path / "export")])
    assert (tmp_path / "export" / "ood_list.txt").read_text() == f"{first.entry}\n"
    assert (tmp_path / "export" / "manifest.csv").is_file()
    _ok(["export", "--db", str(db), "--out", str(tmp_path / "export_json"), "--format", "json"])
    assert (tmp_path / "export_json" / "manifest.json").is_file()


def test_review_refuses_public_bind_without_token(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(app_mod, "serve", lambda *a, **k: pytest.fail("must not serve"))
    res = runner.invoke(app, ["ood", "review", "--db", str(tmp_path / "x.sqlite"), "--host", "0.0.0.0"])
    assert isinstance(res.exception, ConfigError) and "token" in str(res.exception)


def test_openimages_pool_from_csvs(tmp_path: Path):
    ids = [f"{i:016x}" for i in range(1, 6)]
    labels = tmp_path / "train-annotations-human-imagelabels.csv"
    labels.write_text("ImageID,Source,LabelName,Confidence\n" + "".join(
        f"{i},verification,{mid},1\n" for i, mid in zip(ids, ["/m/06mf6", "/m/07jdr", "/m/06mf6", "/m/01g317", "/m/06mf6"], strict=True)))
    desc = tmp_path / "oidv6-class-descriptions.csv"
    desc.write_text("LabelName,DisplayName\n/m/07jdr,Train\n/m/01g317,Person\n/m/06mf6,Rock\n")
    root = tmp_path / "oi"
    (root / "train").mkdir(parents=True)
    for i in ids[:3]:
        make_images(root / "train", 1)
        (root / "train" / "img000.jpg").rename(root / "train" / f"{i}.jpg")
    out = tmp_path / "pool.txt"
    _ok(["pool-openimages", "--labels", str(labels), "--descriptions", str(desc), "--out", str(out),
         "--classes", "train", "--image-root", str(root), "--prefix", "train/", "--only-existing"])
    assert out.read_text() == f"train/{ids[0]}.jpg\ntrain/{ids[2]}.jpg\n"
    meta = json.loads((tmp_path / "pool.json").read_text())
    assert meta["root"] == str(root.resolve()) and meta["excluded_mids"] == {"train": ["/m/07jdr"]}
    # with all 20 classes, the descriptions CSV lacks most MIDs: a clear error naming one of them
    res = runner.invoke(app, ["ood", "pool-openimages", "--labels", str(labels), "--descriptions", str(desc),
                              "--out", str(out)])
    assert isinstance(res.exception, DataError) and "not in the class descriptions" in str(res.exception)
    res = runner.invoke(app, ["ood", "pool-openimages", "--labels", str(labels), "--descriptions", str(desc),
                              "--out", str(out), "--classes", "train,unicorn"])
    assert isinstance(res.exception, ConfigError) and "unicorn" in str(res.exception)


def test_mapping_show_and_copy(tmp_path: Path):
    assert "/m/07jdr" in _ok(["mapping"])
    _ok(["mapping", "--out", str(tmp_path / "my.yaml")])
    assert "woodseg.openimages-mapping/1" in (tmp_path / "my.yaml").read_text()


def test_openimages_pool_refuses_a_class_named_twice(tmp_path: Path):
    labels = tmp_path / "labels.csv"
    labels.write_text("ImageID,Source,LabelName,Confidence\n0000000000000001,verification,/m/06mf6,1\n")
    desc = tmp_path / "desc.csv"
    desc.write_text("LabelName,DisplayName\n/m/07jdr,Train\n/m/06mf6,Rock\n")
    out = tmp_path / "pool.txt"
    res = runner.invoke(app, ["ood", "pool-openimages", "--labels", str(labels), "--descriptions", str(desc),
                              "--out", str(out), "--classes", "train,train"])
    assert isinstance(res.exception, DataError) and "'train'" in str(res.exception)
    assert not out.exists()
