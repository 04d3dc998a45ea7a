"""torchvision ResNets cut into IRN's four stages, with configurable strides and frozen BatchNorm.

IRN's classifier is a ResNet-50 with strides (conv1, layer2, layer3, layer4) = (2, 2, 2, 1): output
stride 16. Stage 1 is conv1+bn1+relu+maxpool+layer1. ``resnet10`` (one BasicBlock per stage) is the same
code path at a fraction of the cost, for CPU-scale work.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn
from torchvision.models import resnet
from torchvision.models.resnet import BasicBlock

from woodseg.errors import ConfigError
from woodseg.models.checkpoint import load_checkpoint
from woodseg.models.shipped import is_shipped, shipped_weights

log = logging.getLogger(__name__)

_BUILDERS = {
    "resnet18": (resnet.resnet18, resnet.ResNet18_Weights.IMAGENET1K_V1),
    "resnet34": (resnet.resnet34, resnet.ResNet34_Weights.IMAGENET1K_V1),
    "resnet50": (resnet.resnet50, resnet.ResNet50_Weights.IMAGENET1K_V1),
    "resnet101": (resnet.resnet101, resnet.ResNet101_Weights.IMAGENET1K_V1),
}


def build_resnet(name: str, weights: str | None) -> resnet.ResNet:
    """A torchvision ResNet: random, ImageNet weights (download), shipped weights (``corpus-resnet10``) or a
    local state-dict file."""
    if is_shipped(weights):
        weights = str(shipped_weights(weights, name))  # type: ignore[arg-type]
    if name == "resnet10":
        net = resnet.ResNet(BasicBlock, [1, 1, 1, 1])
        if weights == "imagenet":
            raise ConfigError("resnet10 has no published ImageNet weights",
                              fix="use model.weights=corpus-resnet10 (shipped), null, or a local file made for resnet10")
    elif name in _BUILDERS:
        builder, enum = _BUILDERS[name]
        if weights == "imagenet":
            try:
                net = builder(weights=enum)
            except Exception as exc:  # no network, proxy, corrupt cache
                raise ConfigError(
                    f"could not download torchvision's ImageNet weights for {name} ({exc.__class__.__name__}: {exc})",
                    fix=f"download {enum.url} elsewhere and pass model.weights=/path/to/file.pth, "
                        "or model.weights=null for random init",
                ) from exc
            return net
        net = builder(weights=None)
    else:
        raise ConfigError(f"unknown backbone '{name}'", fix="use resnet10, resnet18, resnet34, resnet50 or resnet101")
    if weights not in (None, "imagenet"):
        load_backbone_weights(net, Path(weights))
    return net


def load_backbone_weights(net: nn.Module, path: Path) -> None:
    """Load a torchvision-format state dict (IRN's resnet50-19c8e357.pth is one); the fc layer is ignored."""
    state = load_checkpoint(path, what="backbone weights file", fix="fix model.weights")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ConfigError(
            f"{path} does not match the backbone: {len(missing)} missing keys (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})",
            fix="pass weights saved from the same torchvision architecture as model.backbone",
        )


def set_stage_stride(layer: nn.Sequential, stride: int) -> None:
    """Set the stride of a ResNet stage's first block (its strided 3x3/1x1 conv and its downsample)."""
    block = layer[0]
    for m in block.modules():
        if isinstance(m, nn.Conv2d) and m.stride != (1, 1):
            m.stride = (stride, stride)
    if stride != 1 and block.downsample is None:
        raise ConfigError("cannot add a stride to a stage that has no downsample branch",
                          fix="keep that stage's stride at 1 or use a deeper backbone")


def resnet_stages(name: str, weights: str | None, strides: tuple[int, int, int, int]) -> tuple[nn.ModuleList, int]:
    """The four stages as a ModuleList and the channel count of the last one."""
    net = build_resnet(name, weights)
    if strides[0] not in (1, 2):
        raise ConfigError("conv1 stride must be 1 or 2", fix="set model.strides[0] to 1 or 2")
    net.conv1.stride = (strides[0], strides[0])
    for layer, s in zip((net.layer2, net.layer3, net.layer4), strides[1:], strict=True):
        if s not in (1, 2):
            raise ConfigError(f"stage strides must be 1 or 2, got {s}", fix="fix model.strides")
        set_stage_stride(layer, s)
    stages = nn.ModuleList([
        nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1),
        net.layer2,
        net.layer3,
        net.layer4,
    ])
    out_channels = net.fc.in_features
    return stages, out_channels
