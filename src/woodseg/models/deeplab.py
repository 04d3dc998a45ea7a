"""DeepLab-v2 (Chen et al., TPAMI 2018) as the paper trains it: deeplab-pytorch ``libs/models/deeplabv2.py``
and ``libs/models/msc.py``.

A torchvision ResNet with output stride 8 (layer3 dilated 2, layer4 dilated 4, both stride 1), an ASPP of
four 3x3 convolutions (rates 6, 12, 18, 24) straight to class logits, summed, initialised N(0, 0.01) with
zero bias; wrapped in MSC, which also runs the image at 0.5 and 0.75 and takes the element-wise max of the
logits (training returns every scale for the loss). BatchNorm is frozen (eval mode, not optimised), as in
deeplab-pytorch.

torchvision refuses dilation for BasicBlock (ResNet-10/18/34), so :func:`dilate_stage` sets stride,
dilation and padding on the stage's 3x3 convolutions directly; the same function serves Bottleneck
ResNets, so the small CPU-scale backbones run the very same code path as ResNet-101.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from woodseg.models.backbone import build_resnet, set_stage_stride

ASPP_RATES = (6, 12, 18, 24)
MSC_SCALES = (0.5, 0.75)


def dilate_stage(layer: nn.Sequential, dilation: int) -> None:
    """Make a ResNet stage stride 1 and dilate every 3x3 convolution in it (padding = dilation keeps the size)."""
    set_stage_stride(layer, 1)
    for m in layer.modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
            m.dilation = (dilation, dilation)
            m.padding = (dilation, dilation)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling of DeepLab-v2: parallel dilated 3x3 convs to logits, summed."""

    def __init__(self, in_channels: int, num_classes: int, rates: Sequence[int] = ASPP_RATES) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(in_channels, num_classes, 3, padding=r, dilation=r, bias=True)
                                   for r in rates)
        for conv in self.convs:
            nn.init.normal_(conv.weight, mean=0.0, std=0.01)
            nn.init.constant_(conv.bias, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([conv(x) for conv in self.convs]).sum(0)


class DeepLabV2(nn.Module):
    """ResNet (output stride 8) + ASPP: logits [B, C, h/8, w/8] (rounded as the convolutions round)."""

    def __init__(self, num_classes: int, backbone: str = "resnet101", weights: str | None = None,
                 rates: Sequence[int] = ASPP_RATES, freeze_bn: bool = True) -> None:
        super().__init__()
        net = build_resnet(backbone, weights)
        dilate_stage(net.layer3, 2)
        dilate_stage(net.layer4, 4)
        self.backbone = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2,
                                      net.layer3, net.layer4)
        self.aspp = ASPP(net.fc.in_features, num_classes, rates)
        self.freeze_bn = freeze_bn
        if freeze_bn:
            for m in self.backbone.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
                    for p in m.parameters():
                        p.requires_grad_(False)

    def train(self, mode: bool = True) -> DeepLabV2:
        super().train(mode)
        if self.freeze_bn:
            for m in self.backbone.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.aspp(self.backbone(x))


class MSC(nn.Module):
    """Multi-scale inputs: the base at scale 1 and at ``scales``, logits max-fused at the scale-1 size.

    Training returns ``[scale 1, *each scale, max]`` (each at its own size) for the summed loss; eval returns
    the max.
    """

    def __init__(self, base: nn.Module, scales: Sequence[float] = MSC_SCALES) -> None:
        super().__init__()
        self.base = base
        self.scales = tuple(scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        logits = self.base(x)
        size = logits.shape[-2:]
        pyramid = [self.base(F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False))
                   for s in self.scales]
        fused = torch.stack([logits] + [F.interpolate(p, size=size, mode="bilinear", align_corners=False)
                                        for p in pyramid]).max(0).values
        if self.training:
            return [logits, *pyramid, fused]
        return fused


def build_deeplab(num_classes: int, backbone: str = "resnet101", weights: str | None = None,
                  msc_scales: Sequence[float] = MSC_SCALES, freeze_bn: bool = True) -> MSC:
    """DeepLab-v2 wrapped in MSC (an empty ``msc_scales`` gives the single-scale network, still in MSC)."""
    return MSC(DeepLabV2(num_classes, backbone, weights, freeze_bn=freeze_bn), msc_scales)


def param_groups(model: MSC, lr: float, weight_decay: float, weight_mult: float = 10.0,
                 bias_mult: float = 20.0) -> list[dict[str, object]]:
    """deeplab-pytorch's three groups: backbone weights at lr, ASPP weights at 10 lr, ASPP biases at 20 lr
    without weight decay. Frozen BatchNorm parameters are left out (they do not train)."""
    base = model.base
    backbone = [p for p in base.backbone.parameters() if p.requires_grad]
    aspp_w = [c.weight for c in base.aspp.convs]
    aspp_b = [c.bias for c in base.aspp.convs]
    groups = [(backbone, 1.0, weight_decay), (aspp_w, weight_mult, weight_decay), (aspp_b, bias_mult, 0.0)]
    return [{"params": ps, "lr": lr * mult, "initial_lr": lr * mult, "weight_decay": wd}
            for ps, mult, wd in groups if ps]


def deeplab_optimizer(model: MSC, lr: float = 2.5e-4, momentum: float = 0.9, weight_decay: float = 5e-4,
                      weight_mult: float = 10.0, bias_mult: float = 20.0) -> torch.optim.SGD:
    """SGD over :func:`param_groups` (deeplab-pytorch ``main.py``); pair it with poly(0.9) decay."""
    return torch.optim.SGD(param_groups(model, lr, weight_decay, weight_mult, bias_mult), lr=lr, momentum=momentum)


def msc_loss(outputs: torch.Tensor | list[torch.Tensor], labels: torch.Tensor, ignore_index: int = 255
             ) -> torch.Tensor:
    """Cross entropy summed over the MSC outputs, labels resized to each output with nearest, 255 ignored.

    Each output's loss is the mean over the valid pixels of the *global* batch: under DDP (W processes, each
    a slice of the batch) the local sum is divided by the valid-pixel count summed over the ranks, times W
    (DDP averages the gradients), so W processes train as one does even when padding (255) leaves the ranks
    different numbers of valid pixels.
    """
    import torch.distributed as dist

    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    outputs = outputs if isinstance(outputs, list) else [outputs]
    total = outputs[0].new_zeros(())
    for logits in outputs:
        lab = F.interpolate(labels[:, None].float(), size=logits.shape[-2:], mode="nearest-exact")[:, 0].long()
        count = (lab != ignore_index).sum().to(torch.float64)
        if world > 1:
            dist.all_reduce(count)
            count = count / world
        ce = F.cross_entropy(logits, lab, ignore_index=ignore_index, reduction="sum")
        # a crop of padding only gives no signal but keeps the graph (DDP expects every parameter used)
        total = total + (ce / count.clamp_min(1).to(ce.dtype) if count > 0 else 0.0 * logits.sum())
    return total
