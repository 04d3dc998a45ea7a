"""One training step's loss for every variant: baseline, W-OoD (paper / official) and the naive baselines.

Returns named, already-weighted terms whose sum is the loss, so logs show what each part contributes.
Which terms exist is decided by :class:`woodseg.config.WoodConfig` (variant and Table 5 switches) alone.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from woodseg.config import WoodConfig
from woodseg.wood import losses


def wood_objective(model: torch.nn.Module, cfg: WoodConfig, x_in: torch.Tensor, y_in: torch.Tensor,
                   x_ood: torch.Tensor | None, centres: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
                   exclude_index: int | None = None) -> dict[str, torch.Tensor]:
    """Weighted loss terms for one step; ``sum(terms.values())`` is the loss to minimise.

    ``centres`` is (class_centres [C, D], class_valid [C], ood_centres [K, D]) as tensors on the device.
    """
    v = cfg.variant
    # Under DDP (torchrun) the official variant's batch-wide quantities span every rank's slice of the batch.
    across_ranks = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    logits_in, z_in = model(x_in)
    terms: dict[str, torch.Tensor] = {}
    needs_ood = v != "none" and x_ood is not None

    if v == "background_class":
        # Sec. 3.2's naive baseline: one extra 'background' output; OoD images are labelled background only.
        bg = torch.zeros_like(y_in[:, :1])
        terms["cls_in"] = losses.bce_in(logits_in, torch.cat([y_in, bg], 1))
        if needs_ood:
            logits_ood, _ = model(x_ood)
            target = torch.zeros_like(logits_ood)
            target[:, -1] = 1.0
            terms["cls_ood"] = F.binary_cross_entropy_with_logits(logits_ood, target)
        return terms

    if v == "none" or cfg.use_cls_in:
        terms["cls_in"] = losses.bce_in(logits_in, y_in)
    if v == "none":
        return terms

    if v == "uniform_label":
        if needs_ood:
            logits_ood, _ = model(x_ood)
            terms["cls_ood"] = losses.uniform_label_loss(logits_ood)
        return terms

    if cfg.use_cls_ood and needs_ood:
        if v == "paper":
            logits_ood, _ = model(x_ood)
            terms["cls_ood"] = losses.bce_to_zero(logits_ood)
        else:  # official: BCE-to-zero on anti-adversarially perturbed OoD images, weight ood_coeff
            x_adv = losses.anti_adversarial_step(model, x_ood, cfg.adv_step, across_ranks=across_ranks)
            logits_adv, _ = model(x_adv)
            terms["cls_ood"] = cfg.ood_coeff * losses.official_ood_loss(logits_adv, exclude_index, x_in.shape[0])

    if (cfg.use_d_in or cfg.use_d_ood) and cfg.lam > 0:
        if centres is None:
            raise RuntimeError("the distance loss needs centres; compute them before training")
        class_centres, class_valid, ood_centres = centres
        if v == "paper":
            d = losses.distance_loss(z_in, y_in, class_centres, ood_centres, cfg.tau, class_valid=class_valid,
                                     use_pull=cfg.use_d_in, use_push=cfg.use_d_ood)
            if cfg.normalize_by_k:
                d = d / ood_centres.shape[0]
        else:
            d = losses.official_distance_loss(z_in, y_in * class_valid[None].to(y_in.dtype), class_centres,
                                              ood_centres, cfg.tau, use_pull=cfg.use_d_in, use_push=cfg.use_d_ood,
                                              across_ranks=across_ranks)
        terms["dist"] = cfg.lam * d
    return terms


class WoodObjective(torch.nn.Module):
    """The model and its loss as one module, so that DDP sees exactly one forward per step."""

    def __init__(self, model: torch.nn.Module, cfg: WoodConfig, exclude_index: int | None = None) -> None:
        super().__init__()
        self.model, self.cfg, self.exclude_index = model, cfg, exclude_index

    def forward(self, x_in: torch.Tensor, y_in: torch.Tensor, x_ood: torch.Tensor | None,
                centres: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None) -> dict[str, torch.Tensor]:
        return wood_objective(self.model, self.cfg, x_in, y_in, x_ood, centres, self.exclude_index)
