"""Dataset readers: the VOC layout, the custom layout, and OoD lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from woodseg.config import DataConfig
from woodseg.data.build import load_dataset, load_ood
from woodseg.data.custom import read_custom
from woodseg.data.dataset import VOC_CLASSES, read_id_list
from woodseg.data.ood_list import ood_from_folder, read_ood_list, write_ood_list
from woodseg.data.palette import save_palette_png
from woodseg.data.voc import decode_irn_id, read_cls_labels_npy, read_voc
from woodseg.errors import ConfigError, DataError

IDS = ["2007_000032", "2007_000039", "2008_000123"]


def _img(path: Path, size=(6, 5)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 20, 30)).save(path)


def _xml(path: Path, objects: list[tuple[str, list[str]]]) -> None:
    """VOC-style annotation: objects with optional body parts (whose <name> must not become a label)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = ""
    for name, parts in objects:
        part_xml = "".join(f"<part><name>{p}</name><bndbox><xmin>1</xmin></bndbox></part>" for p in parts)
        body += f"<object><name>{name}</name><pose>Left</pose><difficult>1</difficult>{part_xml}</object>"
    path.write_text(f"<annotation><folder>VOC2012</folder><filename>{path.stem}.jpg</filename>"
                    f"<source><database>The VOC2008 Database</database></source>{body}</annotation>")


def _split(root: Path, name: str, lines: list[str], sub: str = "Segmentation") -> Path:
    d = root / "ImageSets" / sub
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{name}.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


def _voc_root(tmp_path: Path, xml: bool = True) -> Path:
    root = tmp_path / "VOC2012"
    for i in IDS:
        _img(root / "JPEGImages" / f"{i}.jpg")
    if xml:
        _xml(root / "Annotations" / f"{IDS[0]}.xml", [("person", ["head", "hand", "foot"]), ("dog", [])])
        _xml(root / "Annotations" / f"{IDS[1]}.xml", [("aeroplane", []), ("aeroplane", [])])
        _xml(root / "Annotations" / f"{IDS[2]}.xml", [("tvmonitor", []), ("person", ["head"])])
    _split(root, "train", IDS[:2])
    _split(root, "val", IDS[2:])
    return root


def _vec(*names: str, classes=VOC_CLASSES) -> np.ndarray:
    v = np.zeros(len(classes), np.float32)
    for n in names:
        v[classes.index(n)] = 1
    return v


# ---- VOC layout -----------------------------------------------------------------------------------------


def test_voc_labels_from_xml_ignore_parts(tmp_path):
    root = _voc_root(tmp_path)
    ds = read_voc(root)
    assert ds.class_names == VOC_CLASSES
    assert ds.splits == {"train": IDS[:2], "val": IDS[2:]}
    np.testing.assert_array_equal(ds.label(IDS[0]), _vec("person", "dog"))
    np.testing.assert_array_equal(ds.label(IDS[1]), _vec("aeroplane"))
    np.testing.assert_array_equal(ds.label(IDS[2]), _vec("tvmonitor", "person"))
    assert ds.label(IDS[0]).dtype == np.float32
    assert ds.image_path(IDS[0]) == root / "JPEGImages" / f"{IDS[0]}.jpg"
    assert ds.mask_paths == {}
    assert ds.check_split("train") == IDS[:2]


def test_voc_part_named_like_a_class_is_not_a_label(tmp_path):
    root = _voc_root(tmp_path)
    # 'head' is a class here and also a part name inside the person objects
    (root / "classes.txt").write_text("person\nhead\ndog\naeroplane\ntvmonitor\n")
    ds = read_voc(root)
    assert ds.class_names == ("person", "head", "dog", "aeroplane", "tvmonitor")
    np.testing.assert_array_equal(ds.label(IDS[0]), [1, 0, 1, 0, 0])
    np.testing.assert_array_equal(ds.label(IDS[2]), [1, 0, 0, 0, 1])


def test_voc_unknown_class_in_xml_names_the_file(tmp_path):
    root = _voc_root(tmp_path)
    bad = root / "Annotations" / f"{IDS[1]}.xml"
    _xml(bad, [("aeroplane", []), ("unicorn", [])])
    with pytest.raises(DataError) as exc:
        read_voc(root)
    msg = str(exc.value)
    assert str(bad) in msg and "unicorn" in msg and "fix:" in msg


def test_voc_broken_xml_names_the_file(tmp_path):
    root = _voc_root(tmp_path)
    bad = root / "Annotations" / f"{IDS[2]}.xml"
    bad.write_text("<annotation><object><name>dog</name>")
    with pytest.raises(DataError) as exc:
        read_voc(root)
    assert str(bad) in str(exc.value)


def test_voc_cls_labels_npy_int32_keys(tmp_path):
    root = _voc_root(tmp_path)
    table = {np.int32(int(i.replace("_", ""))): _vec(name) for i, name in zip(IDS, ["cat", "bus", "sofa"], strict=True)}
    np.save(tmp_path / "cls_labels.npy", table)
    ds = read_voc(root, cls_labels=tmp_path / "cls_labels.npy")
    assert set(ds.labels) == set(IDS)  # decoded '2007000032' -> '2007_000032'
    # the npy file wins over the XML
    np.testing.assert_array_equal(ds.label("2007_000032"), _vec("cat"))
    np.testing.assert_array_equal(ds.label("2008_000123"), _vec("sofa"))


def test_voc_cls_labels_npy_string_keys(tmp_path):
    root = _voc_root(tmp_path, xml=False)
    table = {i: _vec("horse", "person") for i in IDS}
    np.save(tmp_path / "psa.npy", table)
    ds = read_voc(root, cls_labels=tmp_path / "psa.npy")
    for i in IDS:
        np.testing.assert_array_equal(ds.label(i), _vec("horse", "person"))


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_cls_labels_npy_that_would_run_code_is_refused(tmp_path):
    """np.load(allow_pickle=True) would run this file's payload; the label reader refuses it and runs nothing."""
    marker = tmp_path / "ran"
    npy = tmp_path / "cls_labels.npy"
    np.save(npy, np.array({2007000032: _RunsCode(marker)}, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="os.system|posix.system") as exc:
        read_cls_labels_npy(npy, ("aeroplane",))
    assert not marker.exists()
    assert "cls_labels.npy" in str(exc.value)


def test_read_cls_labels_npy_decoding():
    assert decode_irn_id(np.int32(2007000032)) == "2007_000032"
    assert decode_irn_id(2011003276) == "2011_003276"
    assert decode_irn_id(np.int64(2008000002)) == "2008_000002"
    assert decode_irn_id("2007_000032") == "2007_000032"
    assert decode_irn_id(b"2007_000032") == "2007_000032"


def test_voc_cls_labels_wrong_length_errors(tmp_path):
    root = _voc_root(tmp_path)
    (root / "classes.txt").write_text("a\nb\nc\n")
    npy = tmp_path / "cls_labels.npy"
    np.save(npy, {np.int32(2007000032): np.zeros(20, np.float32)})
    with pytest.raises(DataError) as exc:
        read_voc(root, cls_labels=npy)
    msg = str(exc.value)
    assert str(npy) in msg and "20" in msg and "3" in msg and "fix:" in msg


def test_cls_labels_not_a_dict_and_missing(tmp_path):
    npy = tmp_path / "arr.npy"
    np.save(npy, np.zeros((3, 20), np.float32))
    with pytest.raises(DataError) as exc:
        read_cls_labels_npy(npy, VOC_CLASSES)
    assert str(npy) in str(exc.value)
    with pytest.raises(DataError) as exc:
        read_cls_labels_npy(tmp_path / "none.npy", VOC_CLASSES)
    assert "none.npy" in str(exc.value)


def test_voc_labels_from_masks_as_fallback(tmp_path):
    root = _voc_root(tmp_path, xml=False)
    m = np.zeros((5, 6), np.uint8)
    m[0, 0], m[1, 1], m[2, 2] = 2, 15, 255  # bicycle, person, void
    save_palette_png(root / "SegmentationClass" / f"{IDS[0]}.png", m)
    save_palette_png(root / "SegmentationClass" / f"{IDS[1]}.png", np.full((5, 6), 20, np.uint8))
    ds = read_voc(root)
    np.testing.assert_array_equal(ds.label(IDS[0]), _vec("bicycle", "person"))
    np.testing.assert_array_equal(ds.label(IDS[1]), _vec("tvmonitor"))
    assert IDS[2] not in ds.labels  # no XML, no mask: unlabelled
    with pytest.raises(DataError) as exc:
        ds.check_split("val")
    assert IDS[2] in str(exc.value)
    assert ds.has_masks("train") and not ds.has_masks("val")


def test_voc_xml_gaps_filled_from_masks(tmp_path):
    root = _voc_root(tmp_path)
    (root / "Annotations" / f"{IDS[1]}.xml").unlink()
    save_palette_png(root / "SegmentationClass" / f"{IDS[1]}.png", np.full((5, 6), 8, np.uint8))
    ds = read_voc(root)
    np.testing.assert_array_equal(ds.label(IDS[1]), _vec("cat"))
    np.testing.assert_array_equal(ds.label(IDS[0]), _vec("person", "dog"))


def test_voc_mask_values_above_classes_error(tmp_path):
    root = _voc_root(tmp_path, xml=False)
    (root / "classes.txt").write_text("a\nb\n")
    p = root / "SegmentationClass" / f"{IDS[0]}.png"
    save_palette_png(p, np.full((5, 6), 5, np.uint8))
    with pytest.raises(DataError) as exc:
        read_voc(root)
    assert str(p) in str(exc.value)


def test_dlp_two_column_lists_read_as_ids(tmp_path):
    root = _voc_root(tmp_path)
    _split(root, "train_aug", [f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png" for i in IDS],
           sub="SegmentationAug")
    ds = read_voc(root)
    assert ds.ids("train_aug") == IDS
    assert set(ds.splits) == {"train", "val", "train_aug"}


def test_ids_are_never_parsed_as_ints(tmp_path):
    p = tmp_path / "ids.txt"
    p.write_text("2007_000032\n000123\n  0042  \n# a comment\n\n1e5\n2011_003276 extra column\n")
    ids = read_id_list(p)
    assert ids == ["2007_000032", "000123", "0042", "1e5", "2011_003276"]
    assert all(type(i) is str for i in ids)


def test_voc_ids_keep_leading_zeros(tmp_path):
    root = tmp_path / "r"
    for i in ("000001", "000010"):
        _img(root / "JPEGImages" / f"{i}.jpg")
        _xml(root / "Annotations" / f"{i}.xml", [("cat", [])])
    _split(root, "train", ["000001", "000010"])
    ds = read_voc(root)
    assert ds.ids("train") == ["000001", "000010"]
    assert ds.image_path("000001").name == "000001.jpg"


def test_duplicate_id_in_split_list(tmp_path):
    root = _voc_root(tmp_path)
    p = _split(root, "train", [IDS[0], IDS[1], IDS[0]])
    with pytest.raises(DataError) as exc:
        read_voc(root)
    msg = str(exc.value)
    assert str(p) in msg and IDS[0] in msg and "line 3" in msg


def test_segmentationclass_preferred_over_aug(tmp_path):
    root = _voc_root(tmp_path)
    for i in IDS:
        save_palette_png(root / "SegmentationClassAug" / f"{i}.png", np.zeros((5, 6), np.uint8))
    save_palette_png(root / "SegmentationClass" / f"{IDS[0]}.png", np.zeros((5, 6), np.uint8))
    ds = read_voc(root)
    assert ds.mask_path(IDS[0]) == root / "SegmentationClass" / f"{IDS[0]}.png"
    assert ds.mask_path(IDS[1]) == root / "SegmentationClassAug" / f"{IDS[1]}.png"
    assert ds.has_masks("train") and ds.has_masks("val")


def test_segmentation_split_wins_over_aug_on_name_clash(tmp_path):
    root = _voc_root(tmp_path)
    _split(root, "val", [f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png" for i in IDS], sub="SegmentationAug")
    assert read_voc(root).ids("val") == IDS[2:]


def test_classes_txt_overrides_voc_list(tmp_path):
    root = _voc_root(tmp_path, xml=False)
    (root / "classes.txt").write_text("# my classes\nbackground\nperson\n\ndog\n")
    save_palette_png(root / "SegmentationClass" / f"{IDS[0]}.png", np.full((5, 6), 2, np.uint8))
    ds = read_voc(root)
    assert ds.class_names == ("person", "dog")
    assert ds.num_classes == 2
    np.testing.assert_array_equal(ds.label(IDS[0]), [0, 1])
    # an explicit class list wins over classes.txt
    assert read_voc(root, class_names=["x", "y", "z"]).class_names == ("x", "y", "z")


def test_classes_txt_duplicate_or_empty(tmp_path):
    root = _voc_root(tmp_path)
    (root / "classes.txt").write_text("a\nb\na\n")
    with pytest.raises(DataError) as exc:
        read_voc(root)
    assert "classes.txt" in str(exc.value)
    (root / "classes.txt").write_text("# nothing\n\n")
    with pytest.raises(DataError):
        read_voc(root)


def test_missing_root(tmp_path):
    with pytest.raises(DataError) as exc:
        read_voc(tmp_path / "nowhere")
    assert "nowhere" in str(exc.value) and "fix:" in str(exc.value)


def test_missing_jpegimages(tmp_path):
    root = tmp_path / "VOC2012"
    _split(root, "train", IDS)
    with pytest.raises(DataError) as exc:
        read_voc(root)
    assert "JPEGImages" in str(exc.value) and str(root) in str(exc.value)


def test_no_split_lists(tmp_path):
    root = tmp_path / "VOC2012"
    _img(root / "JPEGImages" / "a.jpg")
    with pytest.raises(DataError) as exc:
        read_voc(root)
    assert "ImageSets" in str(exc.value)


def test_unknown_split_lists_available_ones(tmp_path):
    ds = read_voc(_voc_root(tmp_path))
    for call in (ds.ids, ds.check_split):
        with pytest.raises(DataError) as exc:
            call("train_aug")
        msg = str(exc.value)
        assert "train_aug" in msg and "train, val" in msg


def test_explicit_split_files(tmp_path):
    root = _voc_root(tmp_path)
    extra = tmp_path / "mine.txt"
    extra.write_text(f"{IDS[2]}\n{IDS[0]}\n")
    ds = read_voc(root, split_files={"mine": extra})
    assert ds.ids("mine") == [IDS[2], IDS[0]]


def test_fingerprint_changes_with_labels(tmp_path):
    root = _voc_root(tmp_path)
    a = read_voc(root).fingerprint("train")
    assert a == read_voc(root).fingerprint("train")
    _xml(root / "Annotations" / f"{IDS[1]}.xml", [("boat", [])])
    assert read_voc(root).fingerprint("train") != a


def test_load_dataset_from_config(tmp_path):
    root = _voc_root(tmp_path)
    ds = load_dataset(DataConfig(root=root, class_names=list(VOC_CLASSES)))
    assert ds.ids("train") == IDS[:2]
    with pytest.raises(ConfigError):
        load_dataset(DataConfig())


# ---- custom layout --------------------------------------------------------------------------------------


def _custom_root(tmp_path: Path, labels_csv: str | None = None) -> Path:
    root = tmp_path / "custom"
    for name in ("a.jpg", "b.png", "c.jpeg"):
        _img(root / "images" / name)
    (root / "classes.txt").write_text("cat\ndog\nbird\n")
    if labels_csv is not None:
        (root / "labels.csv").write_text(labels_csv)
    return root


def test_custom_csv_with_separators_and_split_column(tmp_path):
    root = _custom_root(tmp_path, "image,labels,split\na.jpg,cat;dog,train\nb.png,bird|cat,val\nc.jpeg, dog ,train\n")
    ds = read_custom(root)
    assert ds.class_names == ("cat", "dog", "bird")
    assert ds.splits == {"train": ["a", "c"], "val": ["b"]}
    np.testing.assert_array_equal(ds.label("a"), [1, 1, 0])
    np.testing.assert_array_equal(ds.label("b"), [1, 0, 1])
    np.testing.assert_array_equal(ds.label("c"), [0, 1, 0])
    assert ds.image_path("b") == root / "images" / "b.png"


def test_custom_csv_without_split_is_all_train(tmp_path):
    root = _custom_root(tmp_path, "image,labels\na.jpg,cat\nb.png,dog\n")
    ds = read_custom(root)
    assert ds.splits == {"train": ["a", "b"]}


def test_custom_stem_without_extension_finds_image(tmp_path):
    root = _custom_root(tmp_path, "image,labels\nb,dog\n")
    assert read_custom(root).image_path("b") == root / "images" / "b.png"


def test_custom_json_labels(tmp_path):
    root = _custom_root(tmp_path)
    (root / "labels.json").write_text('{"a.jpg": ["cat", "bird"], "b": "dog", "c.jpeg": []}')
    ds = read_custom(root)
    np.testing.assert_array_equal(ds.label("a"), [1, 0, 1])
    np.testing.assert_array_equal(ds.label("b"), [0, 1, 0])
    np.testing.assert_array_equal(ds.label("c"), [0, 0, 0])
    assert ds.ids("train") == ["a", "b", "c"]


def test_custom_json_errors(tmp_path):
    root = _custom_root(tmp_path)
    (root / "labels.json").write_text('{"a.jpg": ')
    with pytest.raises(DataError) as exc:
        read_custom(root)
    assert "labels.json" in str(exc.value)
    (root / "labels.json").write_text('["a.jpg"]')
    with pytest.raises(DataError):
        read_custom(root)
    (root / "labels.json").write_text('{"a.jpg": 3}')
    with pytest.raises(DataError) as exc:
        read_custom(root)
    assert "a.jpg" in str(exc.value)


def test_custom_splits_folder(tmp_path):
    root = _custom_root(tmp_path, "image,labels,split\na.jpg,cat,x\nb.png,dog,x\nc.jpeg,bird,x\n")
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("a\nc\n")
    (root / "splits" / "val.txt").write_text("images/b.png\n")
    ds = read_custom(root)
    assert ds.splits == {"train": ["a", "c"], "val": ["b"]}  # the folder wins over the column


def test_custom_split_lists_unlabelled_image(tmp_path):
    root = _custom_root(tmp_path, "image,labels\na.jpg,cat\n")
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("a\nzzz\n")
    with pytest.raises(DataError) as exc:
        read_custom(root)
    assert "zzz" in str(exc.value)


def test_custom_unknown_class_names_file_and_entry(tmp_path):
    root = _custom_root(tmp_path, "image,labels\na.jpg,cat\nb.png,dog;zebra\n")
    with pytest.raises(DataError) as exc:
        read_custom(root)
    msg = str(exc.value)
    assert str(root / "labels.csv") in msg
    assert "zebra" in msg
    assert "entry 3" in msg  # the CSV line (header is line 1)
    assert "b.png" in msg


def test_custom_json_unknown_class_names_the_image(tmp_path):
    root = _custom_root(tmp_path)
    (root / "labels.json").write_text('{"a.jpg": ["cat"], "c.jpeg": ["zebra"]}')
    with pytest.raises(DataError) as exc:
        read_custom(root)
    msg = str(exc.value)
    assert "labels.json" in msg and "zebra" in msg and "c.jpeg" in msg
    assert "entry 2" in msg  # the second entry of the JSON object


def test_custom_missing_columns(tmp_path):
    root = _custom_root(tmp_path, "file,classes\na.jpg,cat\n")
    with pytest.raises(DataError) as exc:
        read_custom(root)
    msg = str(exc.value)
    assert "image" in msg and "labels" in msg and "labels.csv" in msg and "fix:" in msg


def test_custom_duplicate_row(tmp_path):
    root = _custom_root(tmp_path, "image,labels\na.jpg,cat\na.jpg,dog\n")
    with pytest.raises(DataError) as exc:
        read_custom(root)
    assert "a.jpg" in str(exc.value)


def test_custom_layout_problems(tmp_path):
    with pytest.raises(DataError):
        read_custom(tmp_path / "none")
    (tmp_path / "noimg").mkdir()
    with pytest.raises(DataError) as exc:
        read_custom(tmp_path / "noimg")
    assert "images" in str(exc.value)
    root = _custom_root(tmp_path)  # no label file
    with pytest.raises(DataError) as exc:
        read_custom(root)
    assert "labels.csv" in str(exc.value)


def test_custom_masks_and_explicit_labels_file(tmp_path):
    root = _custom_root(tmp_path)
    lf = tmp_path / "elsewhere.csv"
    lf.write_text("image,labels\na.jpg,cat\nb.png,dog\n")
    save_palette_png(root / "masks" / "a.png", np.ones((5, 6), np.uint8))
    ds = read_custom(root, labels_file=lf)
    assert ds.mask_path("a") == root / "masks" / "a.png"
    assert ds.mask_path("b") is None
    ds2 = load_dataset(DataConfig(format="custom", root=root, labels_file=lf))
    assert ds2.ids("train") == ["a", "b"]


# ---- OoD lists ------------------------------------------------------------------------------------------


def _ood_root(tmp_path: Path) -> Path:
    root = tmp_path / "ood"
    for rel in ("x/1.jpg", "x/2.jpg", "y/3.png", "4.jpg"):
        _img(root / rel)
    return root


def test_ood_list_relative_absolute_comments_order_duplicates(tmp_path):
    root = _ood_root(tmp_path)
    absolute = root / "4.jpg"
    lst = tmp_path / "lists" / "ood_list.txt"
    lst.parent.mkdir()
    lst.write_text(f"y/3.png\n\n# a comment\nx/1.jpg  \n{absolute}\nx/1.jpg\nx/2.jpg\n")
    ood = read_ood_list(lst, root)
    assert ood.ids == ["y/3.png", "x/1.jpg", str(absolute), "x/2.jpg"]
    assert ood.paths == [root / "y/3.png", root / "x/1.jpg", absolute, root / "x/2.jpg"]
    assert len(ood) == 4
    sub = ood.subset([3, 0])
    assert sub.ids == ["x/2.jpg", "y/3.png"] and sub.paths == [root / "x/2.jpg", root / "y/3.png"]


def test_ood_list_default_root_is_list_folder(tmp_path):
    root = _ood_root(tmp_path)
    (root / "list.txt").write_text("x/2.jpg\n4.jpg\n")
    ood = read_ood_list(root / "list.txt")
    assert ood.paths == [root / "x/2.jpg", root / "4.jpg"]


def test_ood_fingerprint_depends_on_order(tmp_path):
    root = _ood_root(tmp_path)
    (root / "a.txt").write_text("x/1.jpg\nx/2.jpg\n")
    (root / "b.txt").write_text("x/2.jpg\nx/1.jpg\n")
    assert read_ood_list(root / "a.txt").fingerprint() != read_ood_list(root / "b.txt").fingerprint()


def test_empty_ood_list(tmp_path):
    lst = tmp_path / "ood_list.txt"
    lst.write_text("# only comments\n\n   \n")
    with pytest.raises(DataError) as exc:
        read_ood_list(lst, tmp_path)
    msg = str(exc.value)
    assert str(lst) in msg and "empty" in msg
    assert "wood.variant=none" in exc.value.fix


def test_ood_list_missing_files(tmp_path):
    root = _ood_root(tmp_path)
    lst = tmp_path / "ood_list.txt"
    lst.write_text("x/1.jpg\nm1.jpg\nm2.jpg\nm3.jpg\nm4.jpg\nm5.jpg\n")
    with pytest.raises(DataError) as exc:
        read_ood_list(lst, root)
    msg = str(exc.value)
    assert "5 of 6" in msg
    assert "m1.jpg" in msg and "m3.jpg" in msg
    assert "m5.jpg" not in msg  # only the first few are listed
    assert str(lst) in msg and "fix:" in msg
    assert len(read_ood_list(lst, root, check_exists=False)) == 6


def test_ood_list_file_missing(tmp_path):
    with pytest.raises(DataError) as exc:
        read_ood_list(tmp_path / "nolist.txt")
    assert "nolist.txt" in str(exc.value)


def test_ood_from_folder(tmp_path):
    root = _ood_root(tmp_path)
    (root / "notes.txt").write_text("not an image")
    ood = ood_from_folder(root)
    assert ood.ids == ["4.jpg", "x/1.jpg", "x/2.jpg", "y/3.png"]
    assert ood.paths == [root / i for i in ood.ids]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError):
        ood_from_folder(tmp_path / "empty")
    with pytest.raises(DataError):
        ood_from_folder(tmp_path / "missing")


def test_write_ood_list_round_trip(tmp_path):
    root = _ood_root(tmp_path)
    write_ood_list(root / "out.txt", ["y/3.png", "x/1.jpg"])
    assert read_ood_list(root / "out.txt").ids == ["y/3.png", "x/1.jpg"]


def test_load_ood_from_config(tmp_path):
    root = _ood_root(tmp_path)
    (tmp_path / "l.txt").write_text("x/1.jpg\n")
    assert load_ood(DataConfig(ood_list=tmp_path / "l.txt", ood_root=root)).paths == [root / "x/1.jpg"]
    with pytest.raises(ConfigError) as exc:
        load_ood(DataConfig())
    assert "wood.variant=none" in str(exc.value)


# ---- class lists: each class once, wherever the list comes from ------------------------------------------


def test_classes_txt_duplicate_is_named(tmp_path):
    root = _voc_root(tmp_path)
    (root / "classes.txt").write_text("cat\ndog\ncat\n")
    with pytest.raises(DataError) as exc:
        read_voc(root)
    assert "'cat'" in str(exc.value) and "classes.txt" in str(exc.value)


def test_duplicate_class_names_passed_to_a_reader_are_refused(tmp_path):
    with pytest.raises(DataError) as exc:
        read_voc(_voc_root(tmp_path), class_names=["person", "dog", "person"])
    assert "'person'" in str(exc.value)
    root = _custom_root(tmp_path, "image,labels\na.jpg,cat\n")
    with pytest.raises(DataError) as exc:
        read_custom(root, class_names=["cat", "dog", "cat"])
    assert "'cat'" in str(exc.value)


def test_custom_classes_txt_duplicate_is_named(tmp_path):
    root = _custom_root(tmp_path, "image,labels\na.jpg,cat\n")
    (root / "classes.txt").write_text("cat\ndog\ndog\n")
    with pytest.raises(DataError) as exc:
        read_custom(root)
    assert "'dog'" in str(exc.value) and "classes.txt" in str(exc.value)


# ---- a folder where a file is expected -------------------------------------------------------------------


def test_classes_txt_folder_is_an_error_not_the_voc_classes(tmp_path):
    root = _voc_root(tmp_path)
    (root / "classes.txt").mkdir()
    with pytest.raises(DataError) as exc:
        read_voc(root)
    assert "is a folder, not a file" in str(exc.value) and "classes.txt" in str(exc.value)


def test_custom_classes_txt_and_labels_folder(tmp_path):
    root = _custom_root(tmp_path, "image,labels\na.jpg,cat\n")
    (root / "labels.csv").unlink()
    (root / "labels.csv").mkdir()
    with pytest.raises(DataError) as exc:
        read_custom(root)
    assert "label file is a folder, not a file" in str(exc.value) and "labels.csv" in str(exc.value)
    with pytest.raises(DataError) as exc:
        read_custom(root, labels_file=tmp_path)
    assert "is a folder, not a file" in str(exc.value)
    (root / "classes.txt").unlink()
    (root / "classes.txt").mkdir()
    with pytest.raises(DataError) as exc:
        read_custom(root)
    assert "class list is a folder, not a file" in str(exc.value)


def test_image_and_mask_folders_are_named_as_folders(tmp_path):
    from woodseg.data.images import image_size, load_image, load_mask
    from woodseg.errors import ImageError

    (tmp_path / "x.jpg").mkdir()
    for read in (load_image, image_size):
        with pytest.raises(ImageError) as exc:
            read(tmp_path / "x.jpg")
        assert "is a folder, not a file" in str(exc.value) and "x.jpg" in str(exc.value)
    with pytest.raises(DataError) as exc:
        load_mask(tmp_path / "x.jpg")
    assert "is a folder, not a file" in str(exc.value)
    with pytest.raises(ImageError) as exc:
        load_image(tmp_path / "gone.jpg")
    assert "does not exist" in str(exc.value)


def test_split_list_folder(tmp_path):
    (tmp_path / "train.txt").mkdir()
    with pytest.raises(DataError) as exc:
        read_id_list(tmp_path / "train.txt")
    assert "split list is a folder, not a file" in str(exc.value)


def test_ood_list_that_is_a_folder(tmp_path):
    (tmp_path / "ood_list.txt").mkdir()
    with pytest.raises(DataError) as exc:
        read_ood_list(tmp_path / "ood_list.txt")
    msg = str(exc.value)
    assert "OoD list is a folder, not a file" in msg
    assert "--ood-list" not in msg and "data.ood_list=" in msg


def test_ood_list_missing_suggests_a_real_setting(tmp_path):
    with pytest.raises(DataError) as exc:
        read_ood_list(tmp_path / "nolist.txt")
    assert "does not exist" in str(exc.value)
    assert "--ood-list" not in str(exc.value) and "data.ood_list=" in exc.value.fix


def test_ood_list_entries_that_are_folders(tmp_path):
    root = _ood_root(tmp_path)
    lst = tmp_path / "ood_list.txt"
    lst.write_text("x/1.jpg\nx\ny\n")
    with pytest.raises(DataError) as exc:
        read_ood_list(lst, root)
    msg = str(exc.value)
    assert "2 of 3 OoD list entries are folders, not image files" in msg and str(root / "x") in msg


# ---- OoD lists written as image ids --------------------------------------------------------------------------


def _id_root(tmp_path: Path) -> Path:
    root = tmp_path / "openimages"
    for rel in ("JPEGImages/ood_00000.jpg", "JPEGImages/ood_00001.JPG", "JPEGImages/ood_00002.png", "top_3.jpeg"):
        _img(root / rel)
    return root


def test_ood_list_of_ids_resolves_under_jpegimages_and_root(tmp_path, caplog):
    root = _id_root(tmp_path)
    lst = tmp_path / "ood_list.txt"
    lst.write_text("ood_00000\nood_00001\nood_00002.png\ntop_3\nood_00000.jpg\nJPEGImages/ood_00002.png\n")
    with caplog.at_level("INFO", logger="woodseg.data.ood_list"):
        ood = read_ood_list(lst, root)
    assert ood.ids == ["JPEGImages/ood_00000.jpg", "JPEGImages/ood_00001.JPG", "JPEGImages/ood_00002.png",
                       "top_3.jpeg"]  # the later lines name the same files again: listed once
    assert ood.paths == [root / i for i in ood.ids]
    assert "3 entries read as image ids" in caplog.text and "1 entries found under JPEGImages/" in caplog.text
    assert "line 5 ('ood_00000.jpg') names JPEGImages/ood_00000.jpg again" in caplog.text


def test_ood_list_official_paths_are_kept_as_written(tmp_path, caplog):
    root = _id_root(tmp_path)
    (root / "ood_00000.jpg").write_bytes((root / "JPEGImages" / "ood_00000.jpg").read_bytes())
    lst = tmp_path / "ood_list.txt"
    lst.write_text("JPEGImages/ood_00000.jpg\nood_00000.jpg\n")
    with caplog.at_level("INFO", logger="woodseg.data.ood_list"):
        ood = read_ood_list(lst, root)
    assert ood.ids == ["JPEGImages/ood_00000.jpg", "ood_00000.jpg"]  # a file at the path as written wins
    assert "image ids" not in caplog.text


def test_ood_list_ambiguous_id_lists_the_candidates(tmp_path):
    root = _id_root(tmp_path)
    _img(root / "JPEGImages" / "ood_00000.png")
    _img(root / "ood_00000.webp")
    lst = tmp_path / "ood_list.txt"
    lst.write_text("ood_00001\nood_00000\n")
    with pytest.raises(DataError) as exc:
        read_ood_list(lst, root)
    msg = str(exc.value)
    assert "line 2" in msg and str(lst) in msg
    for cand in ("ood_00000.webp", "JPEGImages/ood_00000.jpg", "JPEGImages/ood_00000.png"):
        assert cand in msg


def test_ood_list_unknown_id_is_missing_and_the_fix_mentions_ids(tmp_path):
    root = _id_root(tmp_path)
    lst = tmp_path / "ood_list.txt"
    lst.write_text("ood_00000\nood_99999\n")
    with pytest.raises(DataError) as exc:
        read_ood_list(lst, root)
    assert "1 of 2" in str(exc.value) and "ood_99999" in str(exc.value)
    assert "image id" in exc.value.fix
    assert read_ood_list(lst, root, check_exists=False).ids == ["JPEGImages/ood_00000.jpg", "ood_99999"]


def test_dataset_root_or_ood_folder_that_is_a_file(tmp_path):
    f = tmp_path / "VOC2012.tar"
    f.write_bytes(b"x")
    for read in (read_voc, read_custom, ood_from_folder):
        with pytest.raises(DataError) as exc:
            read(f)
        assert "is a file, not a folder" in str(exc.value) and "VOC2012.tar" in str(exc.value)


def test_custom_json_image_labelled_twice(tmp_path):
    root = _custom_root(tmp_path)
    (root / "labels.json").write_text('{"a.jpg": ["cat"], "b.png": ["dog"], "a.jpg": ["bird"]}')
    with pytest.raises(DataError) as exc:
        read_custom(root)
    assert "image 'a.jpg' is labelled twice" in str(exc.value) and "labels.json" in str(exc.value)


# ---- text files in another encoding than UTF-8 ---------------------------------------------------------------


def test_latin1_text_files_are_named_with_the_fix(tmp_path):
    latin = "caf\xe9\n".encode("latin-1")
    root = _voc_root(tmp_path)
    (root / "classes.txt").write_bytes(b"person\n" + latin)
    (tmp_path / "split.txt").write_bytes(latin)
    (tmp_path / "ood.txt").write_bytes(latin)
    custom = _custom_root(tmp_path / "c")
    (custom / "labels.csv").write_bytes(b"image,labels\na.jpg," + latin)
    for call, name in ((lambda: read_voc(root), "classes.txt"), (lambda: read_id_list(tmp_path / "split.txt"), "split.txt"),
                       (lambda: read_ood_list(tmp_path / "ood.txt"), "ood.txt"),
                       (lambda: read_custom(custom), "labels.csv")):
        with pytest.raises(DataError) as exc:
            call()
        assert "is not UTF-8 text" in str(exc.value) and name in str(exc.value), str(exc.value)
        assert "iconv" in exc.value.fix
