"""Typed config: defaults, YAML files with _base_, dotted overrides, validation errors, save/load round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from woodseg.config import (
    Config,
    build_config,
    bundled_config_names,
    dump_config,
    load_config,
    merge,
    parse_overrides,
    save_config,
)
from woodseg.errors import ConfigError

SECTIONS = {"name", "out_dir", "data", "model", "train", "wood", "cam", "eval", "ir_labels", "irn", "walk",
            "segmenter", "predict", "runtime"}


def test_defaults_validate():
    cfg = load_config(None)
    assert cfg == Config()
    assert cfg.model.strides == (2, 2, 2, 1)
    assert cfg.train.epochs == 5 and cfg.train.batch_size == 16 and cfg.train.crop_size == 512
    assert cfg.wood.variant == "paper" and cfg.wood.tau == 0.2
    assert cfg.cam.scales == [1.0, 0.5, 1.5, 2.0]
    assert build_config({}) == cfg


def test_bundled_config_names_is_a_list_of_loadable_names():
    names = bundled_config_names()
    assert isinstance(names, list)
    assert names == sorted(names)
    for name in names:
        assert isinstance(name, str) and not name.endswith(".yaml")
        assert isinstance(load_config(name), Config)


def test_unknown_config_name_errors():
    with pytest.raises(ConfigError) as exc:
        load_config("no_such_config_anywhere")
    assert "no_such_config_anywhere" in str(exc.value)
    assert "fix:" in str(exc.value)


def test_load_yaml_file(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text("name: exp1\nout_dir: runs/exp1\ntrain:\n  epochs: 3\n  lr: 0.05\ncam:\n  scales: [1.0, 2.0]\n")
    cfg = load_config(p)
    assert cfg.name == "exp1"
    assert cfg.out_dir == Path("runs/exp1")
    assert cfg.train.epochs == 3 and cfg.train.lr == 0.05
    assert cfg.train.batch_size == 16  # untouched keys keep their defaults
    assert cfg.cam.scales == [1.0, 2.0]


def test_empty_yaml_file_gives_defaults(tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("")
    assert load_config(p) == Config()


def test_invalid_yaml_and_non_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    assert str(bad) in str(exc.value)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(ConfigError) as exc:
        load_config(lst)
    assert str(lst) in str(exc.value)


def test_base_inheritance_deep_merges(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "name: base\ntrain:\n  epochs: 3\n  lr: 0.5\nwood:\n  K: 7\n  lam: 0.1\n"
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mid.yaml").write_text("_base_: ../base.yaml\nwood:\n  K: 9\n")
    (tmp_path / "sub" / "child.yaml").write_text("_base_: mid.yaml\nname: child\ntrain:\n  epochs: 7\n")
    cfg = load_config(tmp_path / "sub" / "child.yaml")
    assert cfg.name == "child"
    assert cfg.train.epochs == 7  # child wins
    assert cfg.train.lr == 0.5  # sibling key from the base survives
    assert cfg.wood.K == 9  # mid wins over base
    assert cfg.wood.lam == 0.1


def test_merge_replaces_non_mappings_and_copies():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    out = merge(base, {"a": {"c": [3]}, "e": 2})
    assert out == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}


def test_parse_overrides_values_are_yaml():
    out = parse_overrides([
        "cam.scales=[1.0, 0.5]", "train.init_from=null", "train.epochs=3", "train.lr=0.25", "name=exp",
        "wood.exclude_class=", "model.channels_last=false", "eval.fixed_threshold=0.15",
    ])
    assert out == {
        "cam": {"scales": [1.0, 0.5]},
        "train": {"init_from": None, "epochs": 3, "lr": 0.25},
        "name": "exp",
        "wood": {"exclude_class": None},
        "model": {"channels_last": False},
        "eval": {"fixed_threshold": 0.15},
    }
    assert isinstance(out["train"]["epochs"], int)


def test_overrides_apply_on_top_of_file(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text("train:\n  epochs: 3\n  init_from: some/where.pt\n")
    cfg = load_config(p, ["train.epochs=4", "train.init_from=null", "cam.scales=[1.0,0.5]", "data.root=/data/voc"])
    assert cfg.train.epochs == 4
    assert cfg.train.init_from is None
    assert cfg.cam.scales == [1.0, 0.5]
    assert cfg.data.root == Path("/data/voc")


def test_override_value_with_equals_sign_keeps_the_rest():
    assert parse_overrides(["name=a=b"]) == {"name": "a=b"}


def test_override_without_equals_errors():
    with pytest.raises(ConfigError) as exc:
        load_config(None, ["train.epochs"])
    assert "train.epochs" in str(exc.value) and "fix:" in str(exc.value)


def test_override_with_empty_key_errors():
    with pytest.raises(ConfigError):
        parse_overrides(["=3"])


def test_conflicting_overrides_error():
    with pytest.raises(ConfigError):
        parse_overrides(["train=3", "train.epochs=4"])


@pytest.mark.parametrize("key,named", [
    ("train.epochz", "train.epochz"), ("wood.kappa", "wood.kappa"), ("nosection.x", "nosection"),
    ("data.root.sub", "data.root"),
])
def test_unknown_keys_are_rejected_naming_the_key(key, named):
    with pytest.raises(ConfigError) as exc:
        load_config(None, [f"{key}=3"])
    msg = str(exc.value)
    assert f"  {named}: " in msg
    assert "fix:" in msg


def test_unknown_key_in_yaml_file_rejected(tmp_path):
    p = tmp_path / "typo.yaml"
    p.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert "train.epoch" in str(exc.value)
    assert str(p) in str(exc.value)


@pytest.mark.parametrize("override,key", [
    ("wood.tau=2", "wood.tau"),
    ("wood.tau=0", "wood.tau"),
    ("train.epochs=0", "train.epochs"),
    ("train.lr=-1", "train.lr"),
    ("wood.variant=bogus", "wood.variant"),
    ("model.backbone=vgg16", "model.backbone"),
    ("cam.scales=notalist", "cam.scales"),
    ("model.frozen_stages=5", "model.frozen_stages"),
])
def test_invalid_values_list_the_key(override, key):
    with pytest.raises(ConfigError) as exc:
        load_config(None, [override])
    assert key in str(exc.value)
    assert "fix:" in str(exc.value)


def test_several_invalid_values_are_all_listed():
    with pytest.raises(ConfigError) as exc:
        load_config(None, ["wood.tau=2", "train.epochs=0"])
    assert "wood.tau" in str(exc.value) and "train.epochs" in str(exc.value)


def test_official_variant_needs_tau_below_one():
    assert load_config(None, ["wood.variant=paper", "wood.tau=1"]).wood.tau == 1
    with pytest.raises(ConfigError):
        load_config(None, ["wood.variant=official", "wood.tau=1"])


def test_dump_config_has_every_section_and_is_plain_yaml():
    text = dump_config(Config())
    data = yaml.safe_load(text)  # safe_load: no python tags for Path or tuple
    assert set(data) == SECTIONS
    assert data["model"]["strides"] == [2, 2, 2, 1]
    assert isinstance(data["out_dir"], str)


def test_runtime_settings_live_in_their_own_section_not_in_train():
    cfg = load_config(None, ["runtime.device=cpu", "runtime.threads=2", "runtime.cam_batch_size=3"])
    assert (cfg.runtime.device, cfg.runtime.threads, cfg.runtime.cam_batch_size) == ("cpu", 2, 3)
    for old in ("train.device=cpu", "train.threads=2", "data.num_workers=2"):
        with pytest.raises(ConfigError, match=old.split("=")[0].split(".")[1]):
            load_config(None, [old])


def test_only_the_demo_config_has_and_saves_a_demo_section(tmp_path):
    assert Config().demo is None and "demo" not in yaml.safe_load(dump_config(Config()))
    demo = load_config("demo")
    assert demo.demo is not None and "demo" in yaml.safe_load(dump_config(demo))
    cfg = load_config(None, ["demo.baseline_epochs=3"])  # given explicitly, it is kept
    assert cfg.demo is not None and cfg.demo.baseline_epochs == 3


def test_bottle_exclusion_is_a_voc_default_only():
    assert Config().wood.exclude_class is None and load_config("demo").wood.exclude_class is None
    for name in ("voc12_cam_r50", "voc12_wood_r50", "voc12_wood-official_r50"):
        cfg = load_config(name)
        assert cfg.wood.exclude_class == "bottle" and cfg.wood.ood_long_side == 500, name


def test_save_config_round_trip(tmp_path):
    cfg = load_config(None, [
        "name=rt", f"out_dir={tmp_path / 'run'}", f"data.root={tmp_path / 'voc'}", "data.class_names=[a,b]",
        "train.resize_long=[40,56]", "train.init_from=x/last.pt", "cam.scales=[1.0,0.5]", "wood.variant=official",
        "wood.tau=0.3", "eval.fixed_threshold=0.15", "model.strides=[2,2,2,2]",
    ])
    path = tmp_path / "saved" / "config.yaml"
    save_config(cfg, path)
    back = load_config(path)
    assert back == cfg
    assert back.train.resize_long == (40, 56)
    assert back.data.root == tmp_path / "voc"
    assert dump_config(back) == dump_config(cfg)
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]


def test_every_config_key_is_documented_and_the_reference_is_current():
    from pathlib import Path

    from woodseg.config import config_reference

    text = config_reference()
    for line in text.splitlines():
        if line.startswith("| `"):
            assert not line.rstrip().endswith("|  |"), f"undocumented key: {line}"
    doc = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    assert doc.read_text() == text, "docs/configuration.md is stale: run `woodseg config reference > docs/configuration.md`"


# ---- ranges: each bad value is a config error naming its key ------------------------------------------------


@pytest.mark.parametrize("override,key", [
    ("train.crop_size=-8", "train.crop_size"),
    ("train.crop_size=0", "train.crop_size"),
    ("runtime.threads=-1", "runtime.threads"),
    ("runtime.threads=0", "runtime.threads"),
    ("train.resize_long=[56,40]", "train.resize_long"),
    ("train.resize_long=[0,0]", "train.resize_long"),
    ("train.resize_long=[-5,40]", "train.resize_long"),
    ("cam.scales=[]", "cam.scales"),
    ("cam.scales=[-1.0]", "cam.scales"),
    ("cam.scales=[0]", "cam.scales"),
    ("cam.scales=[1.0,.nan]", "cam.scales"),
    ("cam.scales=[1.0,1.0]", "cam.scales"),
    ("cam.splits=[]", "cam.splits"),
    ("eval.thresholds=[]", "eval.thresholds"),
    ("eval.thresholds=[-5,7,nan]", "eval.thresholds"),
    ("eval.thresholds=[-5,7]", "eval.thresholds"),
    ("eval.thresholds=[0.1,.inf]", "eval.thresholds"),
    ("eval.fixed_threshold=1.5", "eval.fixed_threshold"),
    ("eval.fixed_threshold=nan", "eval.fixed_threshold"),
    ("train.classifier_lr_mult=-10", "train.classifier_lr_mult"),
    ("train.lr=nan", "train.lr"),
    ("train.lr=.inf", "train.lr"),
    ("train.weight_decay=-1e-4", "train.weight_decay"),
    ("train.momentum=-0.9", "train.momentum"),
    ("train.momentum=1.5", "train.momentum"),
    ("train.poly_power=-0.9", "train.poly_power"),
    ("train.batch_size=0", "train.batch_size"),
    ("train.seed=-1", "train.seed"),
    ("wood.ood_long_side=0", "wood.ood_long_side"),
    ("wood.K=0", "wood.K"),
    ("wood.ood_batch_size=0", "wood.ood_batch_size"),
    ("wood.ood_coeff=-0.25", "wood.ood_coeff"),
    ("wood.adv_step=-0.07", "wood.adv_step"),
    ("wood.lam=nan", "wood.lam"),
    ("model.strides=[2,2,0,1]", "model.strides"),
    ("demo.benchmark_seed=-3", "demo.benchmark_seed"),
])
def test_out_of_range_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as exc:
        load_config(None, [override])
    assert f"  {key}" in str(exc.value), str(exc.value)
    assert "fix:" in str(exc.value)


def test_resize_long_says_which_bound_is_wrong():
    with pytest.raises(ConfigError) as exc:
        load_config(None, ["train.resize_long=[56,40]"])
    assert "low 56 is above high 40" in str(exc.value)


@pytest.mark.parametrize("override", [
    "train.momentum=0.9", "train.momentum=0", "train.classifier_lr_mult=1", "train.weight_decay=0",
    "train.poly_power=0", "train.resize_long=[320,320]", "runtime.threads=1", "runtime.threads=null",
    "cam.scales=[1.0,0.5,1.5,2.0]", "eval.thresholds=[0,0.15,1]", "eval.fixed_threshold=0.15",
    "wood.ood_long_side=null", "wood.ood_coeff=0", "wood.adv_step=0", "cam.splits=null",
])
def test_values_real_recipes_use_stay_valid(override):
    load_config(None, [override])


def test_bundled_configs_still_validate():
    for name in bundled_config_names():
        load_config(name)


# ---- class names ------------------------------------------------------------------------------------------


def test_duplicate_class_names_are_refused_naming_the_duplicate():
    with pytest.raises(ConfigError) as exc:
        load_config(None, ["data.class_names=[a,b,a]"])
    assert "data.class_names" in str(exc.value) and "'a'" in str(exc.value)
    for bad in ("data.class_names=[]", "data.class_names=[a,' ']"):
        with pytest.raises(ConfigError) as exc:
            load_config(None, [bad])
        assert "data.class_names" in str(exc.value)
    assert load_config(None, ["data.class_names=[a,b]"]).data.class_names == ["a", "b"]


# ---- config files -----------------------------------------------------------------------------------------


def test_base_that_includes_itself_is_a_clear_error(tmp_path):
    p = tmp_path / "self.yaml"
    p.write_text("_base_: self.yaml\nname: x\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert "cycle" in str(exc.value) and str(p) in str(exc.value)
    assert "fix:" in str(exc.value)


def test_base_cycle_through_two_files_names_the_chain(tmp_path):
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\nname: b\n")
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "a.yaml")
    msg = str(exc.value)
    assert "cycle" in msg and f"{tmp_path / 'a.yaml'} -> {tmp_path / 'b.yaml'} -> {tmp_path / 'a.yaml'}" in msg


def test_a_diamond_of_bases_is_not_a_cycle(tmp_path):
    (tmp_path / "root.yaml").write_text("name: root\n")
    (tmp_path / "mid.yaml").write_text("_base_: root.yaml\ntrain: {epochs: 2}\n")
    (tmp_path / "top.yaml").write_text("_base_: mid.yaml\nwood: {K: 3}\n")
    cfg = load_config(tmp_path / "top.yaml")
    assert (cfg.name, cfg.train.epochs, cfg.wood.K) == ("root", 2, 3)


def test_latin1_yaml_is_a_clear_error_with_the_fix(tmp_path):
    p = tmp_path / "latin.yaml"
    p.write_bytes("# ok\nname: café\n".encode("latin-1"))
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert str(p) in msg and "not UTF-8" in msg and "line 2" in msg
    assert "UTF-8" in exc.value.fix


def test_folder_named_like_a_bundled_config_reads_the_bundled_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    assert load_config("demo").name == "demo"


def test_folder_given_as_config_is_a_clear_error(tmp_path):
    (tmp_path / "myrun").mkdir()
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "myrun")
    assert "is a folder, not a YAML file" in str(exc.value)


def test_bundled_base_is_not_taken_from_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "voc12_cam_r50.yaml").write_text("name: impostor\ntrain: {epochs: 99}\n")
    cfg = load_config("voc12_wood_r50")
    assert cfg.train.epochs == 5


def test_out_dir_inside_a_file_is_a_config_error(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("x")
    for out in (f, f / "run"):
        with pytest.raises(ConfigError) as exc:
            load_config(None, [f"out_dir={out}"])
        assert "out_dir" in str(exc.value) and f"{f} is a file, not a folder" in str(exc.value)
    assert load_config(None, [f"out_dir={tmp_path / 'new' / 'run'}"]).out_dir == tmp_path / "new" / "run"


def test_a_key_written_twice_in_a_config_file_is_refused(tmp_path):
    p = tmp_path / "twice.yaml"
    p.write_text("train:\n  epochs: 3\nwood:\n  K: 5\ntrain:\n  lr: 0.5\n")  # the second `train:` would drop epochs
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert "'train' appears twice" in str(exc.value) and str(p) in str(exc.value)


def test_missing_base_names_the_including_file(tmp_path):
    p = tmp_path / "top.yaml"
    p.write_text("_base_: gone.yaml\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert "`_base_: gone.yaml`" in str(exc.value) and str(p) in str(exc.value)
    (tmp_path / "gone.yaml").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(p)


def test_user_file_can_build_on_a_bundled_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # a run folder named like the bundled config changes nothing
    p = tmp_path / "mine.yaml"
    p.write_text("_base_: demo.yaml\ntrain: {epochs: 1}\n")
    cfg = load_config(p)
    assert cfg.name == "demo" and cfg.train.epochs == 1 and cfg.train.crop_size == 160
