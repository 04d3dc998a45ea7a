"""Build the dataset and OoD set a config names."""

from __future__ import annotations

from woodseg.config import DataConfig
from woodseg.data.coco import read_coco
from woodseg.data.custom import read_custom
from woodseg.data.dataset import LabelledImageSet, OodSet
from woodseg.data.ood_list import read_ood_list
from woodseg.data.voc import read_voc
from woodseg.errors import ConfigError


def load_dataset(cfg: DataConfig) -> LabelledImageSet:
    if cfg.root is None:
        raise ConfigError("data.root is not set", fix="pass data.root=/path/to/VOC2012 (or use `woodseg demo`)")
    if cfg.format == "voc":
        return read_voc(cfg.root, cfg.class_names, cfg.cls_labels)
    if cfg.format == "coco":
        return read_coco(cfg.root, cfg.class_names)
    return read_custom(cfg.root, cfg.class_names, cfg.labels_file)


def load_ood(cfg: DataConfig) -> OodSet:
    if cfg.ood_list is None:
        raise ConfigError("this stage needs OoD images but data.ood_list is not set",
                          fix="pass data.ood_list=path/to/ood_list.txt (and data.ood_root), or wood.variant=none")
    return read_ood_list(cfg.ood_list, cfg.ood_root)
