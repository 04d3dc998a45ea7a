"""Pool files: the plain list (official format) with metadata, pools from folders and lists."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from ood_helpers import make_images

from woodseg.data.ood_list import read_ood_list
from woodseg.errors import DataError
from woodseg.ood.pool import (
    apply_exclusions,
    pool_from_images,
    pool_root,
    read_exclusions,
    read_pool,
    write_pool,
)


def test_write_and_read_pool_with_root_elsewhere(tmp_path: Path):
    root = tmp_path / "images"
    names = make_images(root / "train", 3)
    out = tmp_path / "lists" / "pool.txt"
    entries = [f"train/{n}" for n in names]
    write_pool(out, entries, root=root, source="openimages", image_ids=[Path(n).stem for n in names], info={"k": 1})
    assert out.read_text() == "".join(f"{e}\n" for e in entries)
    meta = json.loads((tmp_path / "lists" / "pool.json").read_text())
    assert meta["root"] == str(root.resolve()) and meta["num_images"] == 3 and meta["k"] == 1
    rows = list(csv.DictReader(open(tmp_path / "lists" / "pool.csv")))
    assert [r["path"] for r in rows] == entries and rows[0]["image_id"] == "img000"
    assert pool_root(out) == root.resolve()
    ood = read_pool(out)
    assert ood.ids == entries and all(p.is_file() for p in ood.paths)
    # the list alone is in the official format: the standard reader takes it with the root
    assert read_ood_list(out, root).ids == entries


def test_empty_pool_is_refused_on_write_and_read(tmp_path: Path):
    with pytest.raises(DataError, match="pool is empty"):
        write_pool(tmp_path / "pool.txt", [], root=tmp_path, source="x")
    p = tmp_path / "empty.txt"
    p.write_text("# nothing\n\n")
    with pytest.raises(DataError, match="candidate pool is empty") as exc:
        read_pool(p)
    assert "pool-folder" in str(exc.value)


def test_entries_with_newlines_are_refused(tmp_path: Path):
    with pytest.raises(DataError, match="newline"):
        write_pool(tmp_path / "pool.txt", ["a.jpg", "b\n.jpg"], root=tmp_path, source="x")


def test_missing_images_are_reported(tmp_path: Path):
    make_images(tmp_path, 1)
    write_pool(tmp_path / "pool.txt", ["img000.jpg", "gone.jpg"], root=tmp_path, source="x")
    with pytest.raises(DataError, match="1 of 2 OoD images do not exist"):
        read_pool(tmp_path / "pool.txt")


def test_pool_from_folder_list_and_exclusions(tmp_path: Path):
    make_images(tmp_path / "disc" / "a", 2)
    make_images(tmp_path / "disc" / "b", 2, ext=".png")
    ood, root = pool_from_images(tmp_path / "disc")
    assert root == tmp_path / "disc"
    assert ood.ids == ["a/img000.jpg", "a/img001.jpg", "b/img000.png", "b/img001.png"]
    lst = tmp_path / "list.txt"
    lst.write_text("a/img001.jpg\nb/img000.png\n")
    ood2, root2 = pool_from_images(lst, tmp_path / "disc")
    assert ood2.ids == ["a/img001.jpg", "b/img000.png"] and root2 == tmp_path / "disc"
    ex = tmp_path / "exclude.txt"
    ex.write_text("# labelled images\na/img000.jpg\nimg001\n")
    assert apply_exclusions(ood, read_exclusions(ex)).ids == ["b/img000.png"]
    with pytest.raises(DataError, match="neither a folder nor a list"):
        pool_from_images(tmp_path / "nothing")
    with pytest.raises(DataError, match="exclusion list does not exist"):
        read_exclusions(tmp_path / "nope.txt")


def test_exclusion_list_that_is_a_folder(tmp_path):
    from woodseg.ood.pool import read_exclusions

    with pytest.raises(DataError, match="exclusion list is a folder, not a file"):
        read_exclusions(tmp_path)


def test_pool_that_is_a_folder_or_missing_names_the_pool(tmp_path):
    from woodseg.ood.pool import read_pool

    with pytest.raises(DataError) as exc:
        read_pool(tmp_path)
    assert "candidate pool is a folder, not a file" in str(exc.value) and "data.ood_list" not in str(exc.value)
    with pytest.raises(DataError) as exc:
        read_pool(tmp_path / "pool.txt")
    assert "candidate pool does not exist" in str(exc.value) and "pool-folder" in exc.value.fix
