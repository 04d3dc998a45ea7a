"""Candidate pools from OpenImages label CSVs written here: exclusion rules, streaming, clear errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from woodseg.errors import DataError
from woodseg.ood.mapping import parse_mapping, resolve_mapping
from woodseg.ood.openimages import (
    build_openimages_pool,
    read_class_descriptions,
    restrict_to_existing,
    sample_ids,
    stream_label_rows,
)

DESC = {"/m/07jdr": "Train", "/m/0bt9lr": "Dog", "/m/rail": "Rail", "/m/tree": "Tree"}
HEADER = "ImageID,Source,LabelName,Confidence\n"


def _ids(n: int) -> list[str]:
    return [f"{i:016x}" for i in range(1, n + 1)]


def _resolved(classes=("train", "dog")):
    doc = {"classes": {"train": {"primary": ["/m/07jdr"]}, "dog": {"primary": ["/m/0bt9lr"]}}}
    return resolve_mapping(parse_mapping(doc).restrict(list(classes)), DESC)


def _write(path: Path, rows: list[tuple[str, str, str, str]], header: str = HEADER) -> Path:
    path.write_text(header + "".join(",".join(r) + "\n" for r in rows))
    return path


def test_descriptions_with_and_without_header(tmp_path: Path):
    v5 = tmp_path / "class-descriptions.csv"
    v5.write_text('/m/07jdr,Train\n/m/x,"Kitchen, dining room table"\n')
    v6 = tmp_path / "oidv6-class-descriptions.csv"
    v6.write_text('LabelName,DisplayName\n/m/07jdr,Train\n')
    assert read_class_descriptions(v5) == {"/m/07jdr": "Train", "/m/x": "Kitchen, dining room table"}
    assert read_class_descriptions(v6) == {"/m/07jdr": "Train"}
    bad = tmp_path / "bad.csv"
    bad.write_text("ImageID,Source\n")
    with pytest.raises(DataError, match="line 1") as exc:
        read_class_descriptions(bad)
    assert str(bad) in str(exc.value)


def test_pool_excludes_positive_human_and_machine_labels(tmp_path: Path):
    a, b, c, d, e, f = _ids(6)
    human = _write(tmp_path / "train-annotations-human-imagelabels.csv", [
        (a, "verification", "/m/rail", "1"),     # rail only: candidate
        (b, "verification", "/m/07jdr", "1"),    # a train: excluded
        (b, "verification", "/m/rail", "1"),
        (c, "verification", "/m/07jdr", "0"),    # verified absent: candidate
        (d, "crowdsource-verification", "/m/0bt9lr", "1"),  # a dog: excluded
        (e, "verification", "/m/tree", "1"),
    ])
    machine = _write(tmp_path / "train-annotations-machine-imagelabels.csv", [
        (e, "machine", "/m/07jdr", "0.7"),       # machine says train >= 0.5: excluded
        (a, "machine", "/m/07jdr", "0.3"),       # below 0.5: still a candidate
        (f, "machine", "/m/tree", "0.9"),        # only in the machine file: seen, candidate
    ])
    ids, stats = build_openimages_pool([human], _resolved())
    assert ids == [a, c, e]
    ids, stats = build_openimages_pool([human], _resolved(), machine_label_files=[machine])
    assert ids == [a, c, f]
    assert stats.images_seen == 6 and stats.images_excluded == 3 and stats.candidates == 3
    assert stats.positive_rows_per_class == {"train": 2, "dog": 1}
    # restricting the targets to "train" lets the dog image in
    ids, _ = build_openimages_pool([human], _resolved(("train",)))
    assert ids == [a, c, d, e]


def test_gzip_and_non_hex_ids_and_column_order(tmp_path: Path):
    a, b = _ids(2)
    gz = tmp_path / "labels.csv.gz"
    with gzip.open(gz, "wt", newline="") as fh:
        fh.write("LabelName,Confidence,ImageID,Source\n")
        fh.write(f"/m/07jdr,1,{b},v\n/m/rail,1,{a},v\n/m/rail,1,odd-id-7,v\n/m/rail,1,ABCDEF0123456789,v\n")
    ids, stats = build_openimages_pool([gz], _resolved())
    assert ids == sorted([a, "odd-id-7", "ABCDEF0123456789"])
    assert stats.images_seen == 4


def test_missing_column_names_file_and_column(tmp_path: Path):
    p = _write(tmp_path / "boxes.csv", [("x", "y", "z", "w")], header="ImageID,Source,LabelName,XMin\n")
    with pytest.raises(DataError, match=r"Confidence") as exc:
        build_openimages_pool([p], _resolved())
    assert str(p) in str(exc.value) and "fix:" in str(exc.value)


def test_bad_confidence_and_truncated_rows_name_the_line(tmp_path: Path):
    (a,) = _ids(1)
    p = _write(tmp_path / "l.csv", [(a, "v", "/m/rail", "1"), (a, "v", "/m/tree", "yes")])
    with pytest.raises(DataError, match="line 3: Confidence 'yes'"):
        build_openimages_pool([p], _resolved())
    t = tmp_path / "t.csv"
    t.write_text(HEADER + f"{a},v,/m/rail,1\n{a},v\n")
    with pytest.raises(DataError, match="(?s)line 3.*truncated"):
        build_openimages_pool([t], _resolved())


def test_rows_are_streamed_not_loaded_whole(tmp_path: Path):
    """The reader yields rows lazily: a broken row far down is only met when reached."""
    a, b = _ids(2)
    p = tmp_path / "big.csv"
    p.write_text(HEADER + f"{a},v,/m/rail,1\n" * 1000 + f"{b},v,/m/rail,broken\n")
    rows = stream_label_rows(p)
    assert next(rows) == (a, "/m/rail", 1.0)
    with pytest.raises(DataError, match="line 1002"):
        for _ in rows:
            pass


def test_all_images_excluded_and_missing_inputs(tmp_path: Path):
    (a,) = _ids(1)
    p = _write(tmp_path / "l.csv", [(a, "v", "/m/07jdr", "1")])
    with pytest.raises(DataError, match="no candidate left"):
        build_openimages_pool([p], _resolved())
    with pytest.raises(DataError, match="no human-verified label file"):
        build_openimages_pool([], _resolved())
    with pytest.raises(DataError, match="does not exist"):
        build_openimages_pool([tmp_path / "none.csv"], _resolved())
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        build_openimages_pool([empty], _resolved())


def test_restrict_to_existing_and_sampling(tmp_path: Path):
    ids = _ids(5)
    for i in ids[1:3]:
        (tmp_path / f"{i}.jpg").write_bytes(b"x")
    assert restrict_to_existing(ids, tmp_path) == ids[1:3]
    with pytest.raises(DataError, match="none of the 2"):
        restrict_to_existing(ids[3:], tmp_path)
    s1, s2 = sample_ids(ids, 3, seed=4), sample_ids(ids, 3, seed=4)
    assert s1 == s2 and len(s1) == 3 and s1 == sorted(s1) and set(s1) <= set(ids)
    assert sample_ids(ids, 10) == ids
