"""Test data made on the fly: a tiny VOC-layout dataset with an OoD list (nothing is downloaded)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

from woodseg.data.palette import save_palette_png

CLASSES = ("disc", "bar", "ring")
ROOT = Path(__file__).resolve().parents[1]


def benchmark_script(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (not a package) as module ``name``; dataclasses look it up there."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _draw(rng: np.random.Generator, size: int, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    img = (rng.random((size, size, 3)) * 60 + 40).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for c in classes:
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        r = rng.integers(size // 8, size // 5)
        if c == 0:
            shape = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        elif c == 1:
            shape = (abs(yy - cy) < r // 2) & (abs(xx - cx) < r * 2)
        else:
            d = (yy - cy) ** 2 + (xx - cx) ** 2
            shape = (d < r**2) & (d > (r // 2) ** 2)
        img[shape] = np.array([(200, 40, 40), (40, 200, 40), (40, 40, 200)][c], np.uint8)
        mask[shape] = c + 1
    return img, mask


def make_tiny_voc(root: Path, n_train: int = 24, n_val: int = 8, n_ood: int = 12, size: int = 48,
                  seed: int = 0) -> Path:
    """A VOC-layout dataset with 3 classes, masks, XML annotations, splits and an OoD list."""
    rng = np.random.default_rng(seed)
    for d in ("JPEGImages", "Annotations", "SegmentationClass", "ImageSets/Segmentation", "ood"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    ids = [f"2000_{i:06d}" for i in range(n_train + n_val)]
    for k, image_id in enumerate(ids):
        classes = [k % 3] if k % 4 else [k % 3, (k + 1) % 3]
        img, mask = _draw(rng, size, classes)
        Image.fromarray(img).save(root / "JPEGImages" / f"{image_id}.png")
        save_palette_png(root / "SegmentationClass" / f"{image_id}.png", mask)
        objs = "".join(f"<object><name>{CLASSES[c]}</name><part><name>head</name></part></object>" for c in classes)
        (root / "Annotations" / f"{image_id}.xml").write_text(f"<annotation>{objs}</annotation>")
    split = root / "ImageSets/Segmentation"
    (split / "train_aug.txt").write_text("\n".join(ids[:n_train]) + "\n")
    (split / "train.txt").write_text("\n".join(ids[: n_train // 2]) + "\n")
    (split / "val.txt").write_text("\n".join(ids[n_train:]) + "\n")
    lines = []
    for i in range(n_ood):
        img = (rng.random((size, size, 3)) * 60 + 40).astype(np.uint8)
        Image.fromarray(img).save(root / "ood" / f"o{i:03d}.jpg")
        lines.append(f"o{i:03d}.jpg")
    (root / "ood_list.txt").write_text("\n".join(lines) + "\n")
    return root


def tiny_overrides(root: Path, out: Path, **extra: object) -> list[str]:
    """Config overrides for a fast CPU run on :func:`make_tiny_voc` data."""
    base = {
        "out_dir": out, "data.root": root, "data.ood_root": root / "ood", "data.ood_list": root / "ood_list.txt",
        "model.backbone": "resnet10", "model.freeze_bn": False, "model.frozen_stages": 0,
        "model.channels_last": False,
        "train.epochs": 1, "train.batch_size": 8, "train.lr": 0.01, "train.momentum": 0.9,
        "train.resize_long": "[40,56]", "train.crop_size": 48, "runtime.threads": 1, "train.checkpoint_every": 2,
        "wood.K": 3, "wood.ood_batch_size": 4, "wood.ood_long_side": "null",
        "cam.scales": "[1.0,0.5]",
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def random_checkpoint(out: Path) -> Path:
    """A random resnet10 classifier for :data:`CLASSES` at ``out/classifier/last.pt`` (all class maps non-zero)."""
    import torch

    from woodseg.config import ModelConfig
    from woodseg.models.cam_net import build_cam_net, classifier_checkpoint

    torch.manual_seed(1)
    cfg = ModelConfig(backbone="resnet10", weights=None, freeze_bn=True, frozen_stages=0, channels_last=False)
    net = build_cam_net(cfg, len(CLASSES))
    with torch.no_grad():  # positive weights on non-negative features: every class map is non-zero
        net.classifier.weight.abs_()
    path = out / "classifier" / "last.pt"
    path.parent.mkdir(parents=True)
    torch.save(classifier_checkpoint(net, CLASSES, {"step": 0, "run_fingerprint": "test"}), path)
    return path


def run_main(monkeypatch, capsys, *args: object) -> tuple[int, str, str]:
    """Call the real entry point in-process (the error handling lives in ``main``, not in the typer app):
    exit code, stdout, stderr. The root logger's handlers are restored afterwards."""
    import logging
    import sys

    import pytest

    from woodseg.cli import main

    monkeypatch.setattr(sys, "argv", ["woodseg", *map(str, args)])
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with pytest.raises(SystemExit) as exc:
            main()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err


def torchrun_path() -> Path:
    """The torchrun beside this interpreter (the venv's), else the one on PATH."""
    import shutil
    import sys

    torchrun = Path(sys.executable).with_name("torchrun")
    return torchrun if torchrun.exists() else Path(shutil.which("torchrun") or "torchrun")
