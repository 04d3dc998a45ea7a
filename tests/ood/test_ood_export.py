"""Export: ood_list.txt in the official format (classes interleaved), manifest with checksums, the log."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from ood_helpers import synthetic_ranked

from woodseg.data.ood_list import read_ood_list
from woodseg.errors import DataError
from woodseg.ood.export import kept_entries, write_export
from woodseg.ood.review.store import ReviewSettings, ReviewStore


@pytest.fixture()
def store(tmp_path: Path) -> ReviewStore:
    ranked = synthetic_ranked(tmp_path / "images", tmp_path / "ranked")
    return ReviewStore.create(tmp_path / "review.sqlite", ranked, ReviewSettings(target_n=2))


def _decide(store: ReviewStore, cls: str, entry: str, decision: str, who: str = "ann") -> None:
    s = next(s for s in store.states(cls) if s.entry == entry)
    store.decide(s.id, decision, who)


def test_list_interleaves_classes_and_lists_each_image_once(store: ReviewStore, tmp_path: Path):
    # cat: img000 img003 img006 | dog: img000 img001 img004 img007 | train: img000 img002 img005
    for e in ("img000.jpg", "img003.jpg", "img006.jpg"):
        _decide(store, "cat", e, "keep")
    _decide(store, "dog", "img001.jpg", "keep")
    _decide(store, "dog", "img004.jpg", "reject")
    _decide(store, "train", "img005.jpg", "keep")
    _decide(store, "train", "img002.jpg", "skip")
    entries, per_class = kept_entries(store)
    assert entries == ["img000.jpg", "img001.jpg", "img005.jpg", "img003.jpg", "img006.jpg"]
    assert per_class == {"cat": 3, "dog": 1, "train": 1}
    res = write_export(store, tmp_path / "export")
    assert res.ood_list.read_text() == "".join(f"{e}\n" for e in entries)
    # the trainer's reader (and the official one: a path per line under the OoD root) takes it as is
    assert read_ood_list(res.ood_list, tmp_path / "images").ids == entries


def test_manifest_rows_checksums_and_log(store: ReviewStore, tmp_path: Path):
    _decide(store, "cat", "img003.jpg", "keep", "ann")
    _decide(store, "dog", "img000.jpg", "reject", "bob")  # rejects img000 for cat and train too
    _decide(store, "train", "img002.jpg", "skip", "ann")
    res = write_export(store, tmp_path / "export")
    rows = list(csv.DictReader(open(res.manifest)))
    key = {(r["path"], r["class"]): r for r in rows}
    assert set(key) == {("img003.jpg", "cat"), ("img000.jpg", "dog"), ("img000.jpg", "cat"),
                        ("img000.jpg", "train"), ("img002.jpg", "train")}
    kept = key[("img003.jpg", "cat")]
    assert (kept["decision"], kept["state"], kept["in_list"], kept["reviewer"], kept["image_id"]) == \
        ("keep", "keep", "True", "ann", "img003")
    assert kept["sha256"] == hashlib.sha256((tmp_path / "images" / "img003.jpg").read_bytes()).hexdigest()
    assert float(kept["p"]) > 0.5 and kept["decided_at"]
    auto = key[("img000.jpg", "cat")]
    assert (auto["decision"], auto["state"], auto["in_list"]) == ("unreviewed", "rejected-elsewhere", "False")
    assert key[("img002.jpg", "train")]["decision"] == "skip"
    assert res.ood_list.read_text() == "img003.jpg\n"
    log = [json.loads(line) for line in res.log.read_text().splitlines()]
    assert [(e["decision"], e["reviewer"]) for e in log] == [("keep", "ann"), ("reject", "bob"), ("skip", "ann")]
    summary = json.loads((tmp_path / "export" / "export.json").read_text())
    assert summary["num_images"] == 1 and summary["settings"]["target_n"] == 2


def test_json_manifest_and_empty_export(store: ReviewStore, tmp_path: Path):
    res = write_export(store, tmp_path / "e1", "json")
    assert res.ood_list.read_text() == "" and json.loads(res.manifest.read_text()) == []
    _decide(store, "cat", "img006.jpg", "keep")
    res = write_export(store, tmp_path / "e2", "json")
    (row,) = json.loads(res.manifest.read_text())
    assert row["path"] == "img006.jpg" and row["in_list"] is True and len(row["sha256"]) == 64


def test_missing_kept_image_fails_the_export(store: ReviewStore, tmp_path: Path):
    _decide(store, "cat", "img006.jpg", "keep")
    (tmp_path / "images" / "img006.jpg").unlink()
    with pytest.raises(DataError, match="kept image is missing") as exc:
        write_export(store, tmp_path / "export")
    assert "img006.jpg" in str(exc.value)
    assert not (tmp_path / "export" / "ood_list.txt").exists()


def test_manifest_csv_escapes_formula_cells(tmp_path: Path):
    from ood_helpers import make_images

    from woodseg.ood.candidates import Candidate
    from woodseg.ood.rank import write_ranked

    root = tmp_path / "images"
    make_images(root, 1)
    names = ["@SUM(1+1).jpg", "+cmd.jpg", "=HYPERLINK(x).jpg", "-2+3.jpg", "\tTAB.jpg", "plain.jpg"]
    for n in names:
        (root / n).write_bytes((root / "img000.jpg").read_bytes())
    cands = {"cat": [Candidate(n, "cat", 0.9 - 0.01 * i, i + 1, 0.5, 0.5) for i, n in enumerate(names)]}
    ranked = write_ranked(tmp_path / "ranked", cands, {"class_names": ["cat"], "root": str(root), "threshold": 0.5})
    store = ReviewStore.create(tmp_path / "review.sqlite", ranked, ReviewSettings(target_n=2))
    store.decide_many([(s.id, "keep", None) for s in store.states()], "=cmd|' /C calc'!A0")
    res = write_export(store, tmp_path / "out")
    with open(res.manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    paths = [r["path"] for r in rows]
    assert paths == ["'@SUM(1+1).jpg", "'+cmd.jpg", "'=HYPERLINK(x).jpg", "'-2+3.jpg", "'\tTAB.jpg", "plain.jpg"]
    assert all(r["reviewer"] == "'=cmd|' /C calc'!A0" for r in rows)
    assert all(not r["image_id"].startswith(("=", "+", "-", "@", "\t")) for r in rows)
    assert res.ood_list.read_text().splitlines() == names  # the list is no spreadsheet: names stay as they are


def test_an_image_replaced_after_its_review_is_refused_at_export(store: ReviewStore, tmp_path: Path):
    _decide(store, "cat", "img003.jpg", "keep")
    _decide(store, "dog", "img001.jpg", "reject")
    write_export(store, tmp_path / "ok")
    kept = store.image_path(next(s.image for s in store.states("cat") if s.entry == "img003.jpg"))
    rejected = store.image_path(next(s.image for s in store.states("dog") if s.entry == "img001.jpg"))
    rejected.write_bytes(b"not reviewed")  # a rejected image does not reach the list: no matter
    write_export(store, tmp_path / "still-ok")
    original = kept.read_bytes()
    kept.write_bytes(original[:-10] + b"0123456789")
    with pytest.raises(DataError, match="img003.jpg") as err:
        write_export(store, tmp_path / "refused")
    assert "changed on disk after they were reviewed" in str(err.value) and err.value.path == kept
    assert not (tmp_path / "refused" / "ood_list.txt").exists()
    kept.write_bytes(original)  # restored: the export goes through with the reviewed file's hash
    res = write_export(store, tmp_path / "restored")
    row = next(r for r in csv.DictReader(open(res.manifest, newline="")) if r["path"] == "img003.jpg")
    assert row["sha256"] == hashlib.sha256(original).hexdigest()
