"""The target-class -> OpenImages mapping: the shipped VOC file, validation, name lookup, hierarchy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from woodseg.data.dataset import VOC_CLASSES
from woodseg.errors import ConfigError, DataError
from woodseg.ood.mapping import descendants, load_mapping, parse_mapping, read_hierarchy, resolve_mapping


def test_shipped_mapping_covers_the_20_voc_classes_in_order():
    m = load_mapping()
    assert m.class_names == VOC_CLASSES
    for cls, refs in m.classes.items():
        assert refs, cls
        for ref in refs:
            assert ref.mid is not None and re.fullmatch(r"/m/[0-9a-z_]+", ref.mid), (cls, ref)
    person = {r.mid for r in m.classes["person"]}
    assert {"/m/01g317", "/m/04yx4", "/m/03bt1vf", "/m/0dzct"} <= person
    assert {r.mid for r in m.classes["train"]} == {"/m/07jdr"}
    assert "/m/0cmf2" in {r.mid for r in m.classes["aeroplane"]}


def test_restrict_to_unknown_class_names_the_mapping_file():
    with pytest.raises(ConfigError, match="giraffe") as exc:
        load_mapping().restrict(["train", "giraffe"])
    assert "voc_to_openimages.yaml" in str(exc.value)
    assert load_mapping().restrict(["train"]).class_names == ("train",)


def test_unknown_mid_is_an_error_naming_class_and_fix():
    m = parse_mapping({"classes": {"train": {"primary": [{"mid": "/m/07jdr"}], "also": ["/m/zzzz"]}}}, "my.yaml")
    with pytest.raises(DataError, match=r"train.*/m/zzzz") as exc:
        resolve_mapping(m, {"/m/07jdr": "Train"}, descriptions_path="desc.csv")
    assert "desc.csv" in str(exc.value) and "my.yaml" in str(exc.value)


def test_display_names_resolve_case_insensitively_and_ambiguity_fails():
    desc = {"/m/07jdr": "Train", "/m/a": "Rail", "/m/b": "Bank", "/m/c": "bank"}
    m = parse_mapping({"classes": {"train": {"primary": ["train"], "also": [{"name": "RAIL"}]}}})
    assert resolve_mapping(m, desc).mids["train"] == {"/m/07jdr", "/m/a"}
    amb = parse_mapping({"classes": {"x": {"primary": [{"name": "Bank"}]}}})
    with pytest.raises(DataError, match="matches 2"):
        resolve_mapping(amb, desc)
    missing = parse_mapping({"classes": {"x": {"primary": [{"name": "Nope"}]}}})
    with pytest.raises(DataError, match="matches no"):
        resolve_mapping(missing, desc)


@pytest.mark.parametrize("doc,msg", [
    ({}, "non-empty `classes:`"),
    ({"classes": {"a": ["x"]}}, "expected `primary:`"),
    ({"classes": {"a": {"primary": [], "also": []}}}, "no OpenImages label"),
    ({"classes": {"a": {"primary": [{"mid": "Train"}]}}}, "not an OpenImages MID"),
    ({"classes": {"a": {"primary": ["/m/x"], "extra": []}}}, "unknown key"),
    ({"format": "other/9", "classes": {"a": {"primary": ["/m/x"]}}}, "unknown mapping format"),
])
def test_malformed_mappings_are_rejected(doc, msg):
    with pytest.raises(ConfigError, match=re.escape(msg)):
        parse_mapping(doc, "bad.yaml")


def test_bad_yaml_file_names_the_file(tmp_path: Path):
    p = tmp_path / "m.yaml"
    p.write_text("classes: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as exc:
        load_mapping(p)
    assert str(p) in str(exc.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_mapping(tmp_path / "none.yaml")


def _hierarchy(tmp_path: Path) -> Path:
    tree = {"LabelName": "/m/root", "Subcategory": [
        {"LabelName": "/m/bird", "Subcategory": [{"LabelName": "/m/duck"}, {"LabelName": "/m/owl",
                                                   "Subcategory": [{"LabelName": "/m/snowy"}]}]},
        {"LabelName": "/m/person", "Part": [{"LabelName": "/m/face"}]},
        {"LabelName": "/m/rail"},
    ]}
    p = tmp_path / "bbox_labels_600_hierarchy.json"
    p.write_text(json.dumps(tree))
    return p


def test_hierarchy_adds_descendants_and_parts(tmp_path: Path):
    children = read_hierarchy(_hierarchy(tmp_path))
    assert descendants({"/m/bird"}, children) == {"/m/duck", "/m/owl", "/m/snowy"}
    desc = {m: m for m in ("/m/root", "/m/bird", "/m/duck", "/m/owl", "/m/snowy", "/m/person", "/m/face", "/m/rail")}
    m = parse_mapping({"classes": {"bird": {"primary": ["/m/bird"]}, "person": {"primary": ["/m/person"]}}})
    res = resolve_mapping(m, desc, children)
    assert res.mids["bird"] == {"/m/bird", "/m/duck", "/m/owl", "/m/snowy"}
    assert res.mids["person"] == {"/m/person", "/m/face"}
    off = parse_mapping({"expand_hierarchy": False, "classes": {"bird": {"primary": ["/m/bird"]}}})
    assert resolve_mapping(off, desc, children).mids["bird"] == {"/m/bird"}


def test_bad_hierarchy_file(tmp_path: Path):
    p = tmp_path / "h.json"
    p.write_text(json.dumps({"Subcategory": []}))
    with pytest.raises(DataError, match="LabelName"):
        read_hierarchy(p)
    p.write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        read_hierarchy(p)


def test_class_written_twice_in_a_mapping_is_refused(tmp_path: Path):
    p = tmp_path / "m.yaml"
    p.write_text("classes:\n  train: {primary: [/m/07jdr]}\n  cat: {primary: [/m/01yrx]}\n"
                 "  train: {primary: [/m/0cmf2]}\n")
    with pytest.raises(ConfigError) as exc:
        load_mapping(p)
    assert "'train' appears twice" in str(exc.value) and str(p) in str(exc.value)


def test_restrict_to_a_class_named_twice_is_refused():
    with pytest.raises(DataError) as exc:
        load_mapping().restrict(["train", "cat", "train"])
    assert "'train'" in str(exc.value)


def test_mapping_path_that_is_a_folder(tmp_path: Path):
    with pytest.raises(ConfigError, match="mapping file is a folder, not a file"):
        load_mapping(tmp_path)


def test_latin1_mapping_names_the_file(tmp_path: Path):
    p = tmp_path / "m.yaml"
    p.write_bytes("classes:\n  caf\xe9: {primary: [/m/x]}\n".encode("latin-1"))
    with pytest.raises(ConfigError) as exc:
        load_mapping(p)
    assert "not UTF-8" in str(exc.value) and "line 2" in str(exc.value) and str(p) in str(exc.value)
