"""Pretrain a backbone by single-label classification on an ImageFolder corpus (the benchmark's "ImageNet").

The paper's classifiers start from ImageNet weights (Sec. 4.1); on a CPU the benchmark world gets its own
pretraining corpus instead (:mod:`woodseg.data.benchmark.corpus`) and this stage trains a plain
torchvision ResNet on it (standard strides, softmax cross-entropy with label smoothing, SGD with a
cosine schedule). The result is a torchvision-format state dict without ``fc``: ``model.weights`` takes
it like any other local weights file, and IRN's fine-tuning recipe (frozen BatchNorm, frozen stem,
10x classifier learning rate) then applies as it does to ImageNet weights.

Determinism: the data order is :class:`~woodseg.train.sampler.StepBatchSampler`'s (a function of the
step), each sample's crop and flip are seeded by (seed, index, epoch), and the model is initialised from
``seed``; with the same torch build, CPU and thread count the output file is bit-identical, and a run
resumed from its epoch checkpoint ends where an uninterrupted one does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.models import resnet
from torchvision.models.resnet import BasicBlock

from woodseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from woodseg.errors import ConfigError, DataError
from woodseg.fsutil import atomic_write_json, ensure_dir, sha256_file
from woodseg.models.checkpoint import load_checkpoint, save_checkpoint
from woodseg.train.engine import stop_requests
from woodseg.train.sampler import StepBatchSampler

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class PretrainSettings:
    """The pretraining recipe. The defaults are the recipe of the weights that ship with woodseg."""

    backbone: str = "resnet10"
    epochs: int = 16
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-5
    label_smoothing: float = 0.1
    warmup_epochs: float = 0.5
    crop_scale: tuple[float, float] = (0.35, 1.0)
    seed: int = 0
    threads: int = 2
    """torch CPU threads; recorded, since float sums (and so the exact bits) depend on it."""

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["crop_scale"] = list(self.crop_scale)
        return d

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Corpus:
    """An ImageFolder corpus decoded into memory (uint8 NHWC), one integer label per image."""

    categories: list[str]
    images: np.ndarray
    labels: np.ndarray
    files: list[Path] = field(default_factory=list)


def read_corpus(root: Path, split: str) -> Corpus:
    """Every image of ``root/split/<category>/``; all images of a corpus must share one size."""
    base = root / split
    if not base.is_dir():
        raise DataError(f"no '{split}' folder in the pretraining corpus", path=base,
                        fix="lay the corpus out as <root>/train/<category>/*.jpg and <root>/val/<category>/*.jpg")
    categories = sorted(p.name for p in base.iterdir() if p.is_dir())
    files, labels = [], []
    for k, c in enumerate(categories):
        for p in sorted((base / c).iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                files.append(p)
                labels.append(k)
    if len(categories) < 2 or not files:
        raise DataError(f"the corpus split '{split}' needs at least two category folders with images", path=base,
                        fix="add category sub-folders holding .jpg or .png images")
    arrays = []
    for p in files:
        try:
            with Image.open(p) as im:
                arrays.append(np.asarray(im.convert("RGB")))
        except OSError as exc:
            raise DataError(f"unreadable image ({exc})", path=p, fix="delete or replace the file") from exc
    if len({a.shape for a in arrays}) != 1:
        raise DataError("corpus images differ in size", path=base, fix="resize the corpus to one square size")
    return Corpus(categories, np.stack(arrays), np.asarray(labels, dtype=np.int64), files)


def build_backbone(name: str, n_classes: int, seed: int) -> resnet.ResNet:
    torch.manual_seed(seed)
    if name == "resnet10":
        return resnet.ResNet(BasicBlock, [1, 1, 1, 1], num_classes=n_classes)
    if name in ("resnet18", "resnet34", "resnet50", "resnet101"):
        return getattr(resnet, name)(weights=None, num_classes=n_classes)
    raise ConfigError(f"unknown backbone '{name}'", fix="use resnet10, resnet18, resnet34, resnet50 or resnet101")


_MEAN = torch.from_numpy(IMAGENET_MEAN).view(1, 3, 1, 1)
_STD = torch.from_numpy(IMAGENET_STD).view(1, 3, 1, 1)


def augment_batch(images: np.ndarray, keys: list[tuple[int, int, int]], s: PretrainSettings) -> torch.Tensor:
    """Random-resized crop (area ``crop_scale``, aspect 3/4-4/3) and flip per sample, seeded by (seed, index,
    epoch); normalised NCHW float32 at the corpus size."""
    size = images.shape[1]
    out = []
    for index, epoch, _ in keys:
        rng = np.random.default_rng(np.random.SeedSequence([s.seed, index, epoch]))
        area = rng.uniform(*s.crop_scale) * size * size
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w = int(round(min(size, math.sqrt(area * aspect))))
        h = int(round(min(size, math.sqrt(area / aspect))))
        y0, x0 = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
        crop = torch.from_numpy(np.ascontiguousarray(images[index, y0:y0 + h, x0:x0 + w])).permute(2, 0, 1)[None]
        crop = F.interpolate(crop.float(), size=(size, size), mode="bilinear", align_corners=False)
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        out.append(crop)
    return (torch.cat(out) / 255.0 - _MEAN) / _STD


def _lr(s: PretrainSettings, step: int, total: int, per_epoch: int) -> float:
    warm = max(1, int(s.warmup_epochs * per_epoch))
    if step < warm:
        return s.lr * (step + 1) / warm
    return 0.5 * s.lr * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


@torch.no_grad()
def top1(net: torch.nn.Module, corpus: Corpus, batch: int = 256) -> float:
    """Top-1 accuracy (%) on a decoded corpus split, centre images as they are."""
    net.eval()
    hits = 0
    for i in range(0, len(corpus.labels), batch):
        x = (torch.from_numpy(corpus.images[i:i + batch]).permute(0, 3, 1, 2).float() / 255.0 - _MEAN) / _STD
        hits += int((net(x.contiguous(memory_format=torch.channels_last)).argmax(1).numpy()
                     == corpus.labels[i:i + batch]).sum())
    net.train()
    return 100.0 * hits / max(1, len(corpus.labels))


def backbone_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The torchvision state dict without the corpus classifier (``fc``), as float16 to halve the file."""
    return {k: (v.half() if v.is_floating_point() else v).clone() for k, v in net.state_dict().items()
            if not k.startswith("fc.")}


def pretrain(corpus_root: Path, out_dir: Path, settings: PretrainSettings | None = None, *,
             weights_name: str = "weights.pth", restart: bool = False, progress: bool = True,
             provenance: dict[str, object] | None = None) -> Path:
    """Train on ``corpus_root`` (ImageFolder) and write ``out_dir/weights_name`` plus ``<name>.json``.

    Resumes from ``out_dir/checkpoint.pth`` (written each epoch) when it was made with the same settings
    and corpus; a checkpoint from other settings is refused unless ``restart``.
    """
    s = settings or PretrainSettings()
    torch.set_num_threads(s.threads)
    out_dir = ensure_dir(out_dir)
    t0 = time.perf_counter()
    train, val = read_corpus(corpus_root, "train"), read_corpus(corpus_root, "val")
    if val.categories != train.categories:
        raise DataError("the corpus' train and val folders hold different categories", path=corpus_root,
                        fix="give both splits the same category sub-folders")
    corpus_key = hashlib.sha256("\n".join(f"{p.relative_to(corpus_root).as_posix()}:{p.stat().st_size}"
                                          for p in train.files).encode()).hexdigest()[:16]
    run_key = {"settings": s.to_dict(), "corpus": corpus_key}
    net = build_backbone(s.backbone, len(train.categories), s.seed).to(memory_format=torch.channels_last)
    decay = [p for n, p in net.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in net.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=s.lr, momentum=s.momentum, nesterov=True)
    sampler = StepBatchSampler(len(train.labels), s.batch_size, seed=s.seed, stream="pretrain", start=0, stop=0)
    per_epoch = sampler.per_epoch
    total = per_epoch * s.epochs
    ckpt_path = out_dir / "checkpoint.pth"
    step = 0
    if ckpt_path.is_file() and not restart:
        ckpt = load_checkpoint(ckpt_path, what="pretraining checkpoint", fix="delete it or pass --restart")
        if ckpt.get("run_key") != run_key:
            raise ConfigError(f"{ckpt_path} was made with other settings or another corpus",
                              fix="pass --restart to start over, or another --out folder")
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step = int(ckpt["step"])
        log.info("resuming pretraining at step %d of %d", step, total)
    sampler = StepBatchSampler(len(train.labels), s.batch_size, seed=s.seed, stream="pretrain", start=step, stop=total)
    net.train()
    history: list[dict[str, float]] = []
    with stop_requests() as stops:
        for keys in sampler:
            for g in opt.param_groups:
                g["lr"] = _lr(s, step, total, per_epoch)
            x = augment_batch(train.images, keys, s).contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(train.labels[[k[0] for k in keys]])
            loss = F.cross_entropy(net(x), y, label_smoothing=s.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % per_epoch == 0 or step == total:
                acc = top1(net, val)
                history.append({"epoch": step / per_epoch, "loss": float(loss.detach()), "val_top1": acc})
                if progress:
                    log.info("pretrain epoch %.0f/%d: loss %.3f, val top-1 %.1f%% (%.0f s)", step / per_epoch,
                             s.epochs, float(loss.detach()), acc, time.perf_counter() - t0)
                save_checkpoint(ckpt_path, {"model": net.state_dict(), "optimizer": opt.state_dict(),
                                            "step": step, "run_key": run_key})
            if stops.signum is not None:
                save_checkpoint(ckpt_path, {"model": net.state_dict(), "optimizer": opt.state_dict(),
                                            "step": step, "run_key": run_key})
                stops.exit()
    weights = out_dir / weights_name
    save_checkpoint(weights, backbone_state(net))
    record = {
        "what": f"{s.backbone} pretrained on an ImageFolder corpus by woodseg pretrain; torchvision state dict "
                "without fc, float16",
        "sha256": sha256_file(weights),
        "settings": s.to_dict(),
        "corpus": {"root_name": corpus_root.name, "categories": len(train.categories),
                   "train_images": len(train.labels), "val_images": len(val.labels), "files_key": corpus_key,
                   **(provenance or {})},
        "val_top1": top1(net, val),
        "history": history,
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    atomic_write_json(weights.with_suffix(".json"), record)
    return weights
