"""IRN's inter-pixel relation network, boundary branch (Ahn et al., CVPR 2019; IRN ``net/resnet50_irn.py``).

A frozen ImageNet ResNet (strides 2, 2, 2, 1; kept in eval mode, features detached) feeds five 1x1 heads
of 32 channels with GroupNorm(4) from the stem and the four stages; the deeper ones are upsampled x2/x4 to
stride 4, concatenated (160 channels) and mapped to one boundary logit per stride-4 pixel. It is trained
from IR labels only through inter-pixel affinities: the affinity of two pixels within ``radius`` (10) is
1 - the largest boundary probability on the straight path between them (IRN ``misc/indexing.py``), pushed
to 1 for pairs with the same confident label and to 0 for pairs with different ones (IRN
``step/train_irn.py``). The displacement (instance) branch is not built: semantic pseudo masks need only
the boundary map.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from woodseg.config import TrainConfig
from woodseg.data.transforms import hwc_to_tensor, normalize, random_crop, rescale
from woodseg.models.backbone import resnet_stages
from woodseg.refine.random_walk import direction_paths, search_directions
from woodseg.train.distributed import DistInfo
from woodseg.train.engine import Engine

IRN_STRIDES = (2, 2, 2, 1)
PAIR_RADIUS = 10


def _head(cin: int, up: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, 32, 1, bias=False), nn.GroupNorm(4, 32)]
    if up > 1:
        layers.append(nn.Upsample(scale_factor=up, mode="bilinear", align_corners=False))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class IRN(nn.Module):
    """Boundary branch of IRN on a frozen ResNet; ``forward`` gives boundary logits [B, 1, ceil(H/4), ceil(W/4)]."""

    def __init__(self, backbone: str = "resnet50", weights: str | None = None) -> None:
        super().__init__()
        stages, _ = resnet_stages(backbone, weights, IRN_STRIDES)
        stem = stages[0]
        self.backbone = nn.ModuleList([stem[:4], stem[4], stages[1], stages[2], stages[3]])
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            chans = [f.shape[1] for f in self._features(torch.zeros(1, 3, 32, 32))]
        self.edge_heads = nn.ModuleList([_head(c, up) for c, up in zip(chans, (1, 1, 2, 4, 4), strict=True)])
        self.edge_out = nn.Conv2d(32 * 5, 1, 1, bias=True)
        self.backbone.eval()

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        with torch.no_grad():
            for stage in self.backbone:
                x = stage(x)
                feats.append(x.detach())
        return feats

    def train(self, mode: bool = True) -> IRN:
        """Only the heads train; the backbone's BatchNorm keeps its ImageNet statistics."""
        super().train(mode)
        self.backbone.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self._features(x)
        h, w = feats[0].shape[-2:]
        maps = [head(f)[..., :h, :w] for head, f in zip(self.edge_heads, feats, strict=True)]
        return self.edge_out(torch.cat(maps, 1))


# ---- pairs and affinities ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PairGrid:
    """Source pixels of the training pairs on an h x w map: all pixels whose every neighbour within the
    radius lies inside the map (IRN ``PathIndex``): rows [0, h-r+1), columns [r-1, w-r+1)."""

    h: int
    w: int
    radius: int

    @property
    def margin(self) -> int:
        return self.radius - 1

    @property
    def src_shape(self) -> tuple[int, int]:
        return self.h - self.margin, self.w - 2 * self.margin

    @property
    def num_directions(self) -> int:
        return len(search_directions(self.radius))

    def _window(self, t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
        sh, sw = self.src_shape
        return t[..., dy:dy + sh, self.margin + dx:self.margin + dx + sw]

    def affinities(self, edge: torch.Tensor) -> torch.Tensor:
        """[B, D, S] affinity of every pair from boundary probabilities [B, 1, h, w] (1 - path maximum)."""
        out = []
        for path in direction_paths(self.radius):
            m = self._window(edge[:, 0], int(path[0, 0]), int(path[0, 1]))
            for py, px in path[1:]:
                m = torch.maximum(m, self._window(edge[:, 0], int(py), int(px)))
            out.append((1.0 - m).flatten(1))
        return torch.stack(out, 1)

    def labels(self, label: torch.Tensor, num_labels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(background-positive, foreground-positive, negative) pair masks [B, D, S] from labels [B, h, w].

        A pair counts only where both ends are confident (label < ``num_labels``; 255 is ignored).
        """
        src = self._window(label, 0, 0).flatten(1)[:, None]
        dst = torch.stack([self._window(label, int(dy), int(dx)).flatten(1)
                           for dy, dx in search_directions(self.radius)], 1)
        valid = (src < num_labels) & (dst < num_labels)
        equal = src == dst
        pos = equal & valid
        return (pos & (src == 0)).float(), (pos & (src > 0)).float(), (~equal & valid).float()


def affinity_loss(aff: torch.Tensor, bg_pos: torch.Tensor, fg_pos: torch.Tensor, neg: torch.Tensor
                  ) -> dict[str, torch.Tensor]:
    """IRN's boundary loss as two terms summing to (positive + negative) / 2.

    positive = (mean over background pairs + mean over foreground pairs) / 2 of -log(aff);
    negative = mean over negative pairs of -log(1 - aff); each mean guarded by 1e-5.
    """
    pos_term = -torch.log(aff + 1e-5)
    neg_term = -torch.log(1.0 + 1e-5 - aff)
    bg = (bg_pos * pos_term).sum() / (bg_pos.sum() + 1e-5)
    fg = (fg_pos * pos_term).sum() / (fg_pos.sum() + 1e-5)
    ng = (neg * neg_term).sum() / (neg.sum() + 1e-5)
    return {"pos_aff": (bg + fg) / 4, "neg_aff": ng / 2}


def irn_step(model: nn.Module, batch: dict[str, torch.Tensor], num_labels: int, radius: int = PAIR_RADIUS
             ) -> dict[str, torch.Tensor]:
    """One training step's loss terms from ``{"img": [B, 3, S, S], "label": [B, S/4, S/4] IR labels}``."""
    edge = torch.sigmoid(model(batch["img"]))
    label = batch["label"].to(edge.device)
    h, w = label.shape[-2:]
    edge = edge[..., :h, :w]
    grid = PairGrid(h, w, radius)
    return affinity_loss(grid.affinities(edge), *grid.labels(label, num_labels))


# ---- data, training, inference -----------------------------------------------------------------------------

def irn_train_sample(image: np.ndarray, ir_label: np.ndarray, rng: np.random.Generator, crop: int = 512,
                     scale_range: tuple[float, float] = (0.5, 1.5)) -> dict[str, torch.Tensor]:
    """IRN's augmentation (``voc12/dataloader.py`` VOC12AffinityDataset): random scale (bicubic image, nearest
    label), normalise, flip, crop (pad image 0, label 255), label reduced x0.25 nearest."""
    scale = scale_range[0] + rng.random() * (scale_range[1] - scale_range[0])
    img = normalize(rescale(image, scale, order=3))
    lab = rescale(ir_label, scale, order=0)
    if rng.random() < 0.5:
        img, lab = img[:, ::-1], lab[:, ::-1]
    img, lab = random_crop([img, lab], crop, [0.0, 255], rng)
    lab = rescale(np.ascontiguousarray(lab), 0.25, order=0)
    return {"img": hwc_to_tensor(img), "label": torch.from_numpy(lab.astype(np.int64))}


def irn_optimizer(model: IRN, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD over the boundary heads at ``cfg.lr`` (IRN: 0.1), IRN's weight decay and momentum slot (1e-4)."""
    params = model.trainable_parameters()
    return torch.optim.SGD([{"params": params, "lr": cfg.lr, "initial_lr": cfg.lr}], lr=cfg.lr,
                           momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def train_irn(model: IRN, batches: Iterable[dict[str, torch.Tensor]], *, num_labels: int, cfg: TrainConfig,
              max_steps: int, steps_per_epoch: int, out_dir: Path, run_fingerprint: str,
              radius: int = PAIR_RADIUS, extra: dict[str, Any] | None = None, dist: DistInfo | None = None,
              restart: bool = False, progress: bool = True) -> None:
    """Train the boundary branch with the shared engine (poly LR, resumable ``last.pt``, metrics.jsonl)."""
    optimizer = irn_optimizer(model, cfg)
    engine = Engine(model, model, optimizer, max_steps=max_steps, steps_per_epoch=steps_per_epoch,
                    out_dir=out_dir, cfg=cfg, run_fingerprint=run_fingerprint,
                    make_checkpoint=lambda: {"model": model.state_dict(), **(extra or {})}, dist=dist,
                    progress=progress, desc="irn")
    start, finished = engine.resume(restart)
    if finished:
        return
    engine.run(batches, lambda b: irn_step(model, b, num_labels, radius), start)


@torch.no_grad()
def infer_edge(model: IRN, image: torch.Tensor, pad_to: int = 512) -> np.ndarray:
    """Boundary map [ceil(H/4), ceil(W/4)] of one normalised image [3, H, W]: the image and its mirror,
    zero-padded to ``pad_to`` (or the next multiple of 16 if larger), sigmoid of the averaged logits."""
    model.eval()
    h, w = image.shape[-2:]
    ph = max(pad_to, math.ceil(h / 16) * 16)
    pw = max(pad_to, math.ceil(w / 16) * 16)
    x = torch.stack([image, image.flip(-1)])
    x = F.pad(x, (0, pw - w, 0, ph - h))
    logits = model(x)[:, 0, : (h - 1) // 4 + 1, : (w - 1) // 4 + 1]
    return torch.sigmoid(logits[0] / 2 + logits[1].flip(-1) / 2).cpu().numpy()
