"""The CAM classifier F: backbone -> GAP -> bias-free 1x1 classifier (IRN's ``resnet50_cam.Net``).

The logits equal GAP of the pre-ReLU CAM (the classifier is linear and bias-free), and the penultimate
feature z = GAP(stage4) is the feature the W-OoD distance loss works on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from woodseg.config import ModelConfig
from woodseg.errors import ConfigError
from woodseg.models.backbone import resnet_stages
from woodseg.models.checkpoint import load_checkpoint


class CamNet(nn.Module):
    """ResNet stages + 1x1 conv classifier with ``num_outputs`` channels (C, or C+1 with a background class)."""

    def __init__(self, cfg: ModelConfig, num_outputs: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.stages, self.feature_dim = resnet_stages(cfg.backbone, cfg.weights, cfg.strides)
        self.classifier = nn.Conv2d(self.feature_dim, num_outputs, 1, bias=False)
        self.num_outputs = num_outputs
        for stage in self.stages[: cfg.frozen_stages]:
            for p in stage.parameters():
                p.requires_grad_(False)
        # IRN always freezes conv1/bn1, even when stage 1 is trained.
        if cfg.frozen_stages == 0 and cfg.weights is not None:
            for p in list(self.stages[0][0].parameters()) + list(self.stages[0][1].parameters()):
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> CamNet:
        """Train mode, except BatchNorm keeps its stored statistics when ``freeze_bn`` (FixedBatchNorm)."""
        super().train(mode)
        if self.cfg.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        for stage in self.stages[: self.cfg.frozen_stages]:
            stage.eval()
        return self

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (logits [B, num_outputs], penultimate feature z [B, D])."""
        z = self.feature_map(x).mean(dim=(2, 3))
        logits = self.classifier(z[:, :, None, None]).flatten(1)
        return logits, z

    def cam_raw(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-ReLU class activation maps [B, num_outputs, h, w]."""
        return self.classifier(self.feature_map(x))

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation maps ReLU(W * f) [B, num_outputs, h, w]."""
        return torch.relu(self.cam_raw(x))

    def param_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(trainable backbone parameters, classifier parameters): IRN's 1x and 10x groups."""
        backbone = [p for p in self.stages.parameters() if p.requires_grad]
        return backbone, list(self.classifier.parameters())


def build_cam_net(cfg: ModelConfig, num_outputs: int) -> CamNet:
    net = CamNet(cfg, num_outputs)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


def classifier_checkpoint(model: CamNet, class_names: tuple[str, ...], extra: dict[str, Any]) -> dict[str, Any]:
    """What a classifier checkpoint holds: weights plus everything needed to rebuild and check it."""
    return {
        "format": "woodseg.classifier/1",
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_config": model.cfg.model_dump(mode="json"),
        "class_names": list(class_names),
        "num_outputs": model.num_outputs,
        **extra,
    }


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> tuple[CamNet, tuple[str, ...]]:
    """Rebuild a trained classifier from a woodseg checkpoint (``last.pt``) or an official IRN/AdvCAM/W-OoD one.

    Official files (IRN's ``res50_cam.pth.pth``) hold a bare state dict of IRN ``net/resnet50_cam.py``'s
    ``Net``; they load into a ResNet-50 with the 20 VOC classes. Both are read weights-only.
    """
    path = Path(path)
    obj = load_checkpoint(path, what="classifier checkpoint", fix="train one first (`woodseg train`)")
    if obj.get("format") == "woodseg.classifier/1":
        cfg = ModelConfig.model_validate({**obj["model_config"], "weights": None})
        net = CamNet(cfg, obj["num_outputs"])
        net.load_state_dict(obj["model"])
        names = tuple(obj["class_names"])
    elif any(k.removeprefix("module.").startswith("stage1.") for k in obj):
        from woodseg.data.dataset import VOC_CLASSES

        state = import_irn_state_dict(obj)
        if "classifier.weight" not in state or state["classifier.weight"].shape[0] != len(VOC_CLASSES):
            raise ConfigError(f"{path} looks like an IRN classifier but has no 20-class classifier.weight",
                              path=path, fix="pass an IRN/AdvCAM/W-OoD res50_cam .pth trained on VOC")
        cfg = ModelConfig(backbone="resnet50", weights=None)
        net = CamNet(cfg, len(VOC_CLASSES))
        missing, unexpected = net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]  # absent from pre-0.4.1 files
        if missing or unexpected:
            raise ConfigError(f"{path} does not match IRN's ResNet-50 CAM network: {len(missing)} missing keys "
                              f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})",
                              path=path, fix="pass an IRN/AdvCAM/W-OoD res50_cam .pth (ResNet-50, strides 2,2,2,1)")
        names = VOC_CLASSES
    else:
        raise ConfigError(f"{path} is not a woodseg or IRN classifier checkpoint", path=path,
                          fix="pass classifier/last.pt from `woodseg train`, or an IRN res50_cam .pth")
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net.to(device), names


def classifier_meta(path: str | Path) -> dict[str, Any]:
    """The plain metadata of a woodseg classifier checkpoint (no weights; empty for an IRN state dict).

    Read through :func:`load_checkpoint`: tensors and plain values only, never pickled code.
    """
    obj = load_checkpoint(Path(path))
    if not (isinstance(obj, dict) and obj.get("format") == "woodseg.classifier/1"):
        return {}
    return {k: v for k, v in obj.items() if k not in ("model", "optimizer")}


def import_irn_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the keys of IRN's ``net/resnet50_cam.py`` ``Net`` (also AdvCAM's and W-OoD's) to ours.

    IRN wraps the stem and each ResNet layer in its own ``nn.Sequential``: ``stage1`` = (conv1, bn1, relu,
    maxpool, layer1), as our ``stages.0``, so ``stage1.<i>.*`` -> ``stages.0.<i>.*``; ``stage2..4`` =
    ``Sequential(layerN)``, so ``stage2.0.<block>.*`` -> ``stages.1.<block>.*``. ``classifier.weight``
    [C, 2048, 1, 1] keeps its name; the duplicate ``resnet50.*`` keys (the same tensors) drop out.
    """
    out = {}
    for k, v in state.items():
        k = k.removeprefix("module.")
        if k.startswith("stage"):
            idx, rest = k[len("stage"):].split(".", 1)
            if idx != "1":
                rest = rest.removeprefix("0.")
            out[f"stages.{int(idx) - 1}.{rest}"] = v
        elif k.startswith("classifier."):
            out[k] = v
    return out
