"""Typed run configuration: YAML in, validated models out, `key=value` overrides, resolved copy saved.

Every stage reads one :class:`Config`. A config file names a bundled config (``demo``) or a path; the
bundled ones live in ``woodseg/configs/``. Overrides use dotted keys (``train.epochs=3``) and YAML
values (``cam.scales=[1.0,0.5]``). Unknown keys are errors, never silently ignored.
"""

from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from woodseg.data.classes import duplicate_names
from woodseg.errors import ConfigError, decode_utf8
from woodseg.fsutil import atomic_write_text

log = logging.getLogger(__name__)


_Positive = Annotated[int, Field(ge=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class DataConfig(_Section):
    """Where the in-distribution images, labels and the OoD set are."""

    format: Literal["voc", "custom", "coco"] = Field(
        "voc", description="voc: the VOC/SBD layout; custom: images/ + labels.csv; coco: `woodseg data prepare-coco`'s.")
    root: Path | None = Field(None, description="Dataset folder (VOC: the one holding JPEGImages/).")
    class_names: list[str] | None = Field(
        None, description="Foreground classes in classifier order; default: root/classes.txt, else the 20 VOC classes."
    )
    train_split: str = Field("train_aug", description="Split the classifier trains on.")
    seed_split: str = Field("train", description="Split whose pixel masks judge the seeds (the paper: VOC train).")
    heldout_split: str | None = Field("val", description="Second judged split, to show the classifier did not memorise.")
    cls_labels: Path | None = Field(None, description="IRN-style cls_labels.npy; default: labels from Annotations XML.")
    labels_file: Path | None = Field(None, description="custom format: CSV or JSON of image labels.")
    ood_root: Path | None = Field(None, description="Folder the OoD list's paths are relative to.")
    ood_list: Path | None = Field(None, description="One image path per line, relative to ood_root (official "
                                  "format), or an image id (<id>.jpg, .png, ... in ood_root or its JPEGImages/).")
    on_bad_image: Literal["error", "skip"] = Field(
        "error", description="What a corrupt or unreadable image does: stop with its name, or log and skip it."
    )

    @field_validator("class_names")
    @classmethod
    def _unique_classes(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("must name at least one class (or be null: root/classes.txt, else the 20 VOC classes)")
        if any(not n.strip() for n in v):
            raise ValueError("holds an empty class name")
        dups = duplicate_names(v)
        if dups:
            raise ValueError(f"names {', '.join(repr(d) for d in dups)} more than once; name each class once")
        return v


class ModelConfig(_Section):
    """The CAM classifier: a torchvision ResNet with IRN's strides, GAP and a bias-free 1x1 classifier."""

    backbone: Literal["resnet10", "resnet18", "resnet34", "resnet50", "resnet101"] = Field(
        "resnet50", description="torchvision ResNet; resnet10 (one BasicBlock per stage) is for CPU-scale work.")
    strides: tuple[_Positive, _Positive, _Positive, _Positive] = Field(
        (2, 2, 2, 1), description="Strides of (conv1, layer2, layer3, layer4); IRN uses (2,2,2,1): output stride 16."
    )
    weights: str | None = Field(
        None, description="'imagenet' (torchvision download), 'corpus-resnet10' (shipped, pretrained by `woodseg "
        "pretrain` on the benchmark's corpus), a path to a torchvision state dict, or null (random)."
    )
    freeze_bn: bool = Field(True, description="Keep every BatchNorm on its stored statistics (IRN's FixedBatchNorm).")
    frozen_stages: int = Field(
        2, ge=0, le=4, description="Number of leading stages (stem+layer1 = 1, layer2 = 2, ...) not trained; 0 with "
        "pretrained weights still freezes conv1 and bn1 (IRN net/resnet50_cam.py)."
    )
    channels_last: bool = Field(True, description="NHWC memory format: faster convolutions on CPU and GPU.")


class TrainConfig(_Section):
    """One classifier training schedule (IRN recipe by default)."""

    epochs: int = Field(5, ge=1, description="Passes over the training split (drop_last batches).")
    batch_size: int = Field(16, ge=1, description="Global in-distribution batch (split over DDP processes).")
    lr: float = Field(0.1, gt=0, description="Backbone learning rate; the classifier gets lr * classifier_lr_mult.")
    classifier_lr_mult: float = Field(10.0, ge=0, description="Learning-rate multiplier of the new classifier layer.")
    weight_decay: float = Field(1e-4, ge=0, description="L2 weight decay on both parameter groups.")
    momentum: float = Field(
        1e-4, ge=0, lt=1, description="IRN's PolyOptimizer passes weight_decay into SGD's momentum slot: effectively 1e-4."
    )
    poly_power: float = Field(0.9, ge=0, description="lr = base * (1 - step/max_steps)^poly_power.")
    resize_long: tuple[_Positive, _Positive] = Field((320, 640), description="Random long side (inclusive range) before the crop.")
    crop_size: int = Field(512, ge=1, description="Square random crop; smaller images are padded with the mean colour.")
    init_from: Path | None = Field(None, description="Classifier checkpoint to start from (W-OoD fine-tunes F_in).")
    seed: int = Field(0, ge=0, description="Seeds model init, data order and augmentation.")
    checkpoint_every: int = Field(200, ge=1, description="Steps between resumable checkpoints.")
    checkpoint_minutes: float | None = Field(
        30.0, gt=0, description="Also checkpoint when this many minutes passed since the last one (null: off).")
    log_every: int = Field(1, ge=1, description="Steps between metrics.jsonl records.")
    drop_last: bool = Field(True, description="Drop the last incomplete batch of each epoch (IRN does).")

    @field_validator("resize_long")
    @classmethod
    def _low_high(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] > v[1]:
            raise ValueError(f"low {v[0]} is above high {v[1]}; write [low, high]")
        return v


class WoodConfig(_Section):
    """The paper's contribution: how OoD images and the distance loss enter training."""

    variant: Literal["none", "paper", "official", "background_class", "uniform_label"] = Field(
        "paper",
        description="none: baseline (no OoD); paper: Eq. 1-4 as written; official: the released code's formulas; "
        "background_class / uniform_label: the naive baselines of Sec. 3.2.",
    )
    lam: float = Field(0.007, ge=0, description="lambda of Eq. 4.")
    tau: float = Field(0.2, gt=0, le=1, description="Fraction of the K OoD centres pushed away (top-tau% nearest).")
    K: int = Field(50, ge=1, description="Number of K-means OoD clusters.")
    normalize_by_k: bool = Field(
        True, description="paper: divide L_d by K. The published lambda = 0.007 was tuned with the official code, "
        "which divides by B*K; without this, Eq. 2 read literally is K times stronger (and unbounded below).")
    clustering: Literal["kmeans", "predicted_class"] = Field("kmeans", description="Table 4: how P_ood is built.")
    kmeans_init: Literal["first", "k-means++"] = Field(
        "first", description="first: the first K OoD features in list order (official); k-means++: sklearn's."
    )
    kmeans_iters: int = Field(10, ge=1, description="Lloyd iterations (official: 10).")
    refresh_every: int | None = Field(
        None, ge=1, description="Recompute centres every N epochs; null: once from the starting model (official)."
    )
    ood_batch_size: int = Field(16, ge=1, description="OoD images per step (their own loader, restarted when exhausted).")
    ood_long_side: _Positive | Literal["native"] | None = Field(
        None, description="Long side OoD images are fed to a classifier at (ranking, flags, centres): a size, "
        "'native' (no resize), or null: the classifier's training resolution (middle of train.resize_long).")
    use_cls_in: bool = Field(True, description="Table 5: L_cls on D_in.")
    use_cls_ood: bool = Field(True, description="Table 5: L_cls (BCE to zero) on D_ood.")
    use_d_in: bool = Field(True, description="Table 5: L_d pull towards the image's class centres.")
    use_d_ood: bool = Field(True, description="Table 5: L_d push from the nearest OoD centres.")
    ood_coeff: float = Field(0.25, ge=0, description="official: weight of the OoD classification term.")
    adv_step: float = Field(0.07, ge=0, description="official: anti-adversarial step size on OoD images.")
    exclude_class: str | None = Field(
        None, description="official: OoD images whose top class is this one are left out of the OoD term "
        "(the VOC configs: bottle)."
    )

    @property
    def uses_ood(self) -> bool:
        return self.variant != "none" and (
            self.use_cls_ood or self.use_d_ood or self.variant in ("background_class", "uniform_label")
        )

    @property
    def uses_centres(self) -> bool:
        return self.variant in ("paper", "official") and (self.use_d_in or self.use_d_ood)


TABLE5_ROWS: dict[str, dict[str, bool]] = {
    "a": dict(use_cls_in=True, use_cls_ood=False, use_d_in=False, use_d_ood=False),
    "b": dict(use_cls_in=True, use_cls_ood=True, use_d_in=False, use_d_ood=False),
    "c": dict(use_cls_in=True, use_cls_ood=False, use_d_in=True, use_d_ood=True),
    "d": dict(use_cls_in=True, use_cls_ood=True, use_d_in=True, use_d_ood=False),
    "e": dict(use_cls_in=True, use_cls_ood=True, use_d_in=False, use_d_ood=True),
    "f": dict(use_cls_in=True, use_cls_ood=True, use_d_in=True, use_d_ood=True),
}
"""The loss ablations of the paper's Table 5 as switch settings (row a is the baseline)."""


class CamConfig(_Section):
    """Multi-scale localization-map seeds: CAM (IRN's make_cam) or AdvCAM (anti-adversarial CAM)."""

    method: Literal["cam", "advcam"] = Field("cam", description="cam: IRN's CAM; advcam: AdvCAM (Lee et al., CVPR 2021).")
    adv_iters: int = Field(27, ge=0, description="advcam: anti-adversarial iterations T (13 at scale 0.5, as the code).")
    adv_step: float = Field(0.08, gt=0, description="advcam: step size xi (gradient divided by its max).")
    adv_coeff: float = Field(7.0, ge=0, description="advcam: weight lambda of the restriction term L_AD.")
    adv_score_th: float = Field(0.5, gt=0, lt=1, description="advcam: restriction mask = map > this share of its max.")

    scales: list[float] = Field(default_factory=lambda: [1.0, 0.5, 1.5, 2.0], description="Inference scales (IRN).")
    flip: bool = Field(True, description="Add each scale's horizontal flip (ReLU before the flip-sum).")
    splits: list[str] | None = Field(None, description="Splits to make CAMs for; default: seed and held-out splits.")
    dtype: Literal["float32", "float16"] = Field("float32", description="Storage type of the seed maps.")

    @field_validator("scales")
    @classmethod
    def _scales(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("must list at least one scale (IRN: [1.0, 0.5, 1.5, 2.0])")
        return _check_scales(v, "scales")

    @field_validator("splits")
    @classmethod
    def _splits(cls, v: list[str] | None) -> list[str] | None:
        return _check_splits(v, "the seed and held-out splits")


class EvalConfig(_Section):
    """Seed evaluation (IRN protocol: constant background plane, threshold sweep)."""

    thresholds: list[float] = Field(default_factory=lambda: [round(0.05 + 0.01 * i, 2) for i in range(76)],
                                    description="Background thresholds swept; the whole curve is saved.")
    fixed_threshold: float | None = Field(
        None, ge=0, le=1, description="Report at this threshold too (IRN: 0.15); held-out splits use the best seed-split one."
    )


    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("must list at least one background threshold (IRN sweeps 0.05..0.80)")
        bad = [t for t in v if not 0 <= t <= 1]
        if bad:
            raise ValueError(f"thresholds must lie in [0, 1] (CAMs are max-normalised), got {bad}")
        return v


class IrLabelsConfig(_Section):
    """IR labels from the seeds (IRN ``step/cam_to_ir_label.py``): confident fg / bg, 255 between."""

    preset: Literal["irn", "wood", "advcam"] = Field(
        "irn", description="Named thresholds: irn (fg 0.30, bg 0.05), wood (W-OoD pseudo-GT: 0.30, 0.15), advcam (0.35, 0.15).")
    fg: float | None = Field(None, ge=0, le=1, description="Foreground threshold; null: the preset's.")
    bg: float | None = Field(None, ge=0, le=1, description="Background threshold; null: the preset's.")
    crf: bool = Field(True, description="Refine both label maps with the label-unary dense CRF (IRN does).")
    split: str | None = Field(None, description="Split to make IR labels for (IRN trains on it); null: data.train_split.")


class IrnConfig(_Section):
    """IRN's boundary branch trained on IR labels (IRN ``step/train_irn.py``)."""

    backbone: Literal["resnet10", "resnet18", "resnet34", "resnet50", "resnet101"] = Field(
        "resnet50", description="Frozen ResNet under the boundary heads (IRN: ResNet-50).")
    weights: str | None = Field(
        "imagenet", description="'imagenet', 'corpus-resnet10' (shipped), a torchvision state-dict file, "
        "'classifier' (the run's own classifier backbone: a deviation for data without pretrained weights), or "
        "null (random).")
    epochs: int = Field(3, ge=1, description="Passes over the IR-label split (IRN: 3).")
    batch_size: int = Field(32, ge=1, description="Global batch (IRN: 32), split over DDP processes.")
    lr: float = Field(0.1, gt=0, description="Learning rate of the boundary heads (IRN: 0.1), poly decay.")
    crop_size: int = Field(512, ge=8, description="Square random crop (IRN: 512); a multiple of 4.")
    scale_range: tuple[float, float] = Field((0.5, 1.5), description="Random rescale range before the crop (IRN).")
    radius: int = Field(10, ge=2, description="Pair sampling radius on the stride-4 map (IRN: 10).")
    seed: int = Field(0, ge=0, description="Seeds head init, data order and augmentation.")
    checkpoint_every: int = Field(200, ge=1, description="Steps between resumable checkpoints.")

    @field_validator("scale_range")
    @classmethod
    def _scale_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError(f"need 0 < low <= high, got {list(v)}; write [low, high] (IRN: [0.5, 1.5])")
        return v

    @field_validator("crop_size")
    @classmethod
    def _crop4(cls, v: int) -> int:
        if v % 4:
            raise ValueError(f"must be a multiple of 4 (labels are reduced x0.25), got {v}")
        return v


class WalkConfig(_Section):
    """Random walk of the seeds over IRN's boundary map -> pseudo masks (IRN ``step/make_sem_seg_labels.py``)."""

    preset: Literal["irn", "wood", "advcam"] = Field(
        "irn", description="Named settings: irn (power 1, background 0.25), advcam (1.5, 0.25), wood (1.5, 0.22).")
    beta: float | None = Field(None, gt=0, description="Affinity exponent; null: the preset's (10).")
    exp_times: int | None = Field(None, ge=0, le=12, description="The walk runs 2**exp_times steps; null: preset's (8).")
    radius: int | None = Field(None, ge=2, description="Neighbourhood radius of the walk graph; null: preset's (5).")
    seed_power: float | None = Field(None, gt=0, description="Seeds are raised to this power; null: preset's.")
    bg_threshold: float | None = Field(None, ge=0, le=1, description="Constant background plane; null: preset's.")
    splits: list[str] | None = Field(
        None, description="Splits to make masks for; null: data.train_split (DeepLab's) and data.seed_split (judged).")
    edge_pad: int = Field(512, ge=16, description="Images are zero-padded to this size for the boundary map (IRN: 512).")
def _check_splits(v: list[str] | None, default: str) -> list[str] | None:
    if v is not None and not v:
        raise ValueError(f"must name at least one split (or be null: {default})")
    return v


def _check_scales(v: list[float], what: str) -> list[float]:
    bad = [s for s in v if not s > 0]
    if bad:
        raise ValueError(f"{what} must be above 0, got {bad}")
    dups = duplicate_names(v)
    if dups:
        raise ValueError(f"lists {dups} more than once")
    return v


class SegmenterConfig(_Section):
    """DeepLab-v2 trained on pseudo masks (or ground truth): deeplab-pytorch's ``configs/voc12.yaml`` settings."""

    labels: Literal["masks", "gt"] = Field(
        "masks", description="masks: the run's pseudo masks (out_dir/masks/<id>.png); gt: the dataset's ground-truth "
        "masks (the fully supervised reference).")
    split: str | None = Field(None, description="Split trained on; default: data.train_split.")
    backbone: Literal["resnet10", "resnet18", "resnet50", "resnet101"] = Field(
        "resnet101", description="ResNet with output stride 8 (layer3/layer4 dilated); small ones for CPU-scale runs.")
    weights: str | None = Field(
        None, description="A local torchvision-format ImageNet state dict for the backbone, 'imagenet' "
        "(torchvision download), 'corpus-resnet10' (shipped), or null (random init).")
    freeze_bn: bool = Field(True, description="BatchNorm in eval mode and not optimised (deeplab-pytorch).")
    msc_scales: list[float] = Field(default_factory=lambda: [0.5, 0.75],
                                    description="Extra MSC input scales besides 1.0 (logits max-fused); [] = single scale.")
    batch_size: int = Field(
        10, ge=1, description="Global batch per step (split over DDP processes). deeplab-pytorch takes 5 images "
        "twice with gradient accumulation (10 effective); this engine has no accumulation, so a step takes all 10.")
    iterations: int | None = Field(20000, ge=1, description="Optimiser steps (deeplab-pytorch: 20k); null: use epochs.")
    epochs: int | None = Field(None, ge=1, description="Passes over the split instead of iterations (drop_last batches).")
    lr: float = Field(2.5e-4, gt=0, description="Backbone learning rate (poly decay).")
    aspp_weight_lr_mult: float = Field(10.0, ge=0, description="ASPP weights learn at lr x this.")
    aspp_bias_lr_mult: float = Field(20.0, ge=0, description="ASPP biases learn at lr x this (no weight decay).")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    weight_decay: float = Field(5e-4, ge=0, description="L2 weight decay (not on ASPP biases).")
    poly_power: float = Field(0.9, ge=0, description="lr = base * (1 - step/max_steps)^poly_power.")
    crop_size: int = Field(321, ge=1, description="Square random crop; smaller images are padded (label 255).")
    scales: list[float] = Field(default_factory=lambda: [0.5, 0.75, 1.0, 1.25, 1.5],
                                description="Random rescale factors before the crop.")
    seed: int = Field(0, ge=0, description="Seeds init, data order and augmentation.")
    channels_last: bool = Field(True, description="NHWC memory format for the network and its inputs.")
    checkpoint_every: int = Field(500, ge=1, description="Steps between resumable checkpoints.")
    checkpoint_minutes: float | None = Field(30.0, gt=0, description="Also checkpoint after this many minutes.")
    log_every: int = Field(10, ge=1, description="Steps between metrics.jsonl records.")

    @field_validator("msc_scales", "scales")
    @classmethod
    def _scales(cls, v: list[float]) -> list[float]:
        return _check_scales(v, "scales")

    @model_validator(mode="after")
    def _one_length(self) -> SegmenterConfig:
        if (self.iterations is None) == (self.epochs is None):
            raise ValueError("set exactly one of segmenter.iterations and segmenter.epochs (the other null)")
        if not self.scales:
            raise ValueError("segmenter.scales must list at least one scale")
        return self


class PredictConfig(_Section):
    """Whole-image segmentation of the judged splits: scales x flip, optional dense CRF (deeplab-pytorch)."""

    splits: list[str] | None = Field(None, description="Splits to predict; default: data.heldout_split "
                                     "(else data.seed_split).")
    scales: list[float] = Field(default_factory=lambda: [0.5, 0.75, 1.0, 1.25, 1.5],
                                description="Test scales (each also mirrored if flip); logits fused then softmax.")
    flip: bool = Field(True, description="Add each scale's horizontal mirror.")
    fuse: Literal["mean", "max"] = Field("mean", description="How the scales' logits are fused.")
    batch_size: int = Field(16, ge=1, description="Images per driver batch: the CRF runs over one batch in parallel "
                            "processes, so use at least crf_processes.")
    crf: bool = Field(True, description="Also write predictions/<split>-crf/ refined by the dense CRF.")
    crf_iterations: int = Field(10, ge=1, description="Mean-field iterations.")
    crf_gauss_sxy: float = Field(1.0, gt=0, description="Gaussian kernel: spatial std.")
    crf_gauss_compat: float = Field(3.0, ge=0, description="Gaussian kernel: weight.")
    crf_bi_sxy: float = Field(67.0, gt=0, description="Bilateral kernel: spatial std (COCO repos use 121).")
    crf_bi_srgb: float = Field(3.0, gt=0, description="Bilateral kernel: colour std (COCO repos use 5).")
    crf_bi_compat: float = Field(4.0, ge=0, description="Bilateral kernel: weight.")
    crf_processes: int | None = Field(None, ge=1, description="CRF worker processes; default: the CPU cores divided among "
                                         "this machine's torchrun processes.")

    @field_validator("scales")
    @classmethod
    def _scales(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("must list at least one scale")
        return _check_scales(v, "scales")

    @field_validator("splits")
    @classmethod
    def _splits(cls, v: list[str] | None) -> list[str] | None:
        return _check_splits(v, "the held-out split")


class RuntimeConfig(_Section):
    """How stages run (never what they compute): device, threads, workers, inference batch sizes."""

    device: str = Field("auto", description="auto (CUDA if available), cpu, cuda, cuda:N.")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; default: leave torch's choice.")
    workers: int = Field(0, ge=0, description="Worker processes/threads loading images (0: the main process).")
    cam_batch_size: int = Field(8, ge=1, description="cam: equally sized images per forward pass (AdvCAM: 1).")
    centre_batch_size: int = Field(16, ge=1, description="W-OoD centres: equally sized images per forward pass.")
    score_batch_size: int = Field(16, ge=1, description="ood rank: equally sized images per forward pass.")
    refine_processes: int = Field(1, ge=1, description="ir_labels, masks, eval_masks: worker processes for the "
                                  "dense CRF and the random walk (single-threaded per image).")
    amp: Literal["auto", "off"] = Field(
        "auto", description="auto: autocast on CUDA (bf16 where supported, else fp16 + GradScaler); never on a CPU.")

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_off(cls, v: Any) -> Any:
        return "off" if v is False else v  # YAML reads a bare `off` as false


class DemoConfig(_Section):
    """``woodseg demo``: the whole method on the embedded spurious-correlation benchmark."""

    benchmark_seed: int = Field(0, ge=0, description="Seed of the generated benchmark (its content is a function of it).")
    benchmark_scale: float = Field(1.0, gt=0, description="Multiplies the benchmark's image counts.")
    baseline_epochs: int = Field(8, ge=1, description="Epochs of the in-distribution classifier F_in.")
    baseline_lr: float = Field(0.02, gt=0, description="Backbone learning rate of F_in.")
    ood_threshold: float = Field(0.5, ge=0, le=1, description="Keep pool images with p(c) >= this (paper: 0.5).")
    ood_per_class: int = Field(40, ge=1, description="Hard OoD images the (simulated) reviewer keeps per class.")
    variants: list[Literal["paper", "official"]] = Field(default_factory=lambda: ["paper"],
                                                        description="W-OoD variants trained from F_in.")
    control: bool = Field(False, description="Also fine-tune F_in for the same schedule without OoD (Table 5 a).")
    refine: bool = Field(False, description="Also take F_in and W-OoD on through IR labels, IRN, the random walk "
                         "and DeepLab (Tables 2 and 3); false (the default, ~7 min on 2 cores) stops after the "
                         "seeds and the safeguard, true takes ~15 min.")
    report: bool = Field(True, description="Write report.html.")
    overlays: int = Field(8, ge=0, description="CAM overlay rows in the report.")


class Config(_Section):
    """A whole run: a name, an output folder and one section per stage."""

    name: str = Field("run", description="Run name, shown in tables and logs.")
    out_dir: Path = Field(Path("runs/run"), description="Run folder every stage reads from and writes to.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    wood: WoodConfig = Field(default_factory=WoodConfig)
    cam: CamConfig = Field(default_factory=CamConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    ir_labels: IrLabelsConfig = Field(default_factory=IrLabelsConfig)
    irn: IrnConfig = Field(default_factory=IrnConfig)
    walk: WalkConfig = Field(default_factory=WalkConfig)
    segmenter: SegmenterConfig = Field(default_factory=SegmenterConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    demo: DemoConfig | None = Field(None, description="Only `woodseg demo` reads (and saves) this section.")

    @field_validator("out_dir")
    @classmethod
    def _no_empty_out(cls, v: Path) -> Path:
        if str(v).strip() == "":
            raise ValueError("out_dir must not be empty")
        for part in (v, *v.parents):  # a file where a folder of the run must go: every stage would fail late
            if part.exists() and not part.is_dir():
                raise ValueError(f"{part} is a file, not a folder; choose another out_dir or move that file")
        return v

    @model_validator(mode="after")
    def _check_cross(self) -> Config:
        if self.wood.variant == "official" and not (0 < self.wood.tau < 1):
            raise ValueError("wood.tau must be in (0, 1) for the official variant")
        return self


# ---------------------------------------------------------------------------------------------------------
# loading, overriding, saving


def bundled_config_names() -> list[str]:
    """Names of the configs shipped inside the package (``woodseg/configs/*.yaml``)."""
    root = importlib.resources.files("woodseg") / "configs"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(source: str | Path, _chain: tuple[str, ...] = (), _bundled: bool = False) -> dict[str, Any]:
    """Read a config (a path, else a bundled name) and merge it over its ``_base_`` chain.

    A path that exists as a file wins; a folder of the same name as a bundled config (``-c demo`` run
    where a run folder ``demo/`` sits) is not a config, so the bundled one is read. A bundled config's
    ``_base_`` is bundled too, whatever the working folder holds.
    """
    path = Path(source)
    from_file = not _bundled and path.is_file()
    if from_file:
        where, key = str(path), str(path.resolve())
        text = decode_utf8(path.read_bytes(), where, ConfigError)
    elif str(source) in bundled_config_names():
        if path.exists() and not _bundled:
            log.info("'%s' is a folder here; reading the bundled config '%s'", source, source)
        where, key = f"bundled config '{source}'", f"bundled:{source}"
        text = decode_utf8((importlib.resources.files("woodseg") / "configs" / f"{source}.yaml").read_bytes(), where,
                           ConfigError)
    elif path.is_dir():
        raise ConfigError(f"config '{source}' is a folder, not a YAML file", path=path,
                          fix=f"pass the YAML file inside it, or one of: {', '.join(bundled_config_names())}")
    else:
        raise ConfigError(
            f"config '{source}' is neither a file nor a bundled config",
            fix=f"pass a YAML path or one of: {', '.join(bundled_config_names())}",
        )
    if key in _chain:
        cycle = " -> ".join([*_chain, key])
        raise ConfigError(f"`_base_` includes form a cycle: {cycle}", path=path if from_file else None,
                          fix="remove the `_base_` line that points back to a file already in the chain")
    try:
        data = load_yaml(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}", fix="fix the YAML syntax (each key once)") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a mapping at the top level", fix="write `key: value` lines")
    base = data.pop("_base_", None)
    if base is not None:
        name = str(base).removesuffix(".yaml")
        beside = path.parent / str(base)
        if from_file and beside.is_file():
            data = merge(_read_yaml(beside, (*_chain, key)), data)
        elif name in bundled_config_names():  # a bundled config named by its file name
            data = merge(_read_yaml(name, (*_chain, key), _bundled=True), data)
        else:
            what = "is a folder" if from_file and beside.is_dir() else "names no file there"
            raise ConfigError(f"`_base_: {base}` in {where} {what} and no bundled config",
                              path=beside if from_file else None,
                              fix=f"write the base's path relative to {where}, or one of: "
                                  f"{', '.join(bundled_config_names())}")
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a config or mapping naming a key twice is an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice in one mapping",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses a key written twice in one mapping (it would silently win)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no object construction


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``top`` into a copy of ``base`` (mappings merge, everything else replaces)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Turn ``["train.epochs=3", "cam.scales=[1.0]"]`` into a nested dict; values are parsed as YAML."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' has no '='", fix="write overrides as section.key=value")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override '{item}' has an empty key", fix="write overrides as section.key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() != "" else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"override '{item}': value is not valid YAML", fix="quote the value") from exc
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}' conflicts with another override", fix="set it once")
        node[parts[-1]] = value
    return out


def build_config(data: dict[str, Any], where: str = "config") -> Config:
    """Validate a nested dict into a :class:`Config`, turning pydantic's errors into one readable message."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"])
            lines.append(f"  {loc}: {err['msg']}")
        raise ConfigError(
            f"{where} is invalid:\n" + "\n".join(lines),
            fix="correct or remove those keys (see `woodseg config show demo` for every key)",
        ) from None


def load_config(source: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a config file or bundled name, apply ``key=value`` overrides and validate."""
    data = _read_yaml(source) if source is not None else {}
    data = merge(data, parse_overrides(list(overrides)))
    return build_config(data, where=str(source or "defaults"))


def dump_config(cfg: Config) -> str:
    """The resolved config as YAML (paths as strings, tuples as lists); no ``demo`` section unless set."""
    return yaml.safe_dump(cfg.model_dump(mode="json", exclude={"demo"} if cfg.demo is None else None),
                          sort_keys=False)


def save_config(cfg: Config, path: Path) -> None:
    """Write the resolved config next to a stage's outputs, atomically."""
    atomic_write_text(path, dump_config(cfg))


def config_reference() -> str:
    """Every config key with its default and description, as Markdown (docs/configuration.md is this)."""
    lines = ["# Configuration reference", "",
             "Generated by `woodseg config reference` from the typed config models; every key can be set in a",
             "YAML file or as `section.key=value` on the command line.", ""]
    top = Config()
    lines += ["| key | default | meaning |", "|---|---|---|"]
    for name in ("name", "out_dir"):
        lines.append(f"| `{name}` | `{getattr(top, name)}` | {Config.model_fields[name].description or ''} |")
    for section, field_info in Config.model_fields.items():
        model = field_info.annotation
        if section == "demo":
            model = DemoConfig
        if not (isinstance(model, type) and issubclass(model, _Section)):
            continue
        lines += ["", f"## `{section}`: {(model.__doc__ or '').strip().splitlines()[0]}", "",
                  "| key | default | meaning |", "|---|---|---|"]
        default = (getattr(top, section) or model()).model_dump(mode="json")
        for key, f in model.model_fields.items():
            value = default[key]
            shown = value if not isinstance(value, list) or len(value) <= 6 else f"[{value[0]}, …, {value[-1]}] ({len(value)})"
            lines.append(f"| `{section}.{key}` | `{shown}` | {(f.description or '').replace('|', '/')} |")
    return "\n".join(lines) + "\n"
