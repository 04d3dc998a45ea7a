"""The W-OoD losses: the paper's Eq. (1)-(4), the official code's formulas, and the naive baselines.

Paper (Sec. 3.2), per in-distribution image x with multi-hot label y and feature z = z(x):

    d(x, P_k)   = ||z - p_k||_2                                                   (1)
    L_d         = sum_{c: y_c=1} d(x, P_c^in) - sum_{k in K(x)} d(x, P_k^ood)    (2)
    L_cls       = 1/|C| sum_c [BCE(F^c(x_in), y_c) + BCE(F^c(x_ood), 0)]           (3)
    L           = L_cls + lambda * L_d                                            (4)

with K(x) the top-tau% OoD centres closest to x, *per image*. Batches average Eq. 2 over images.

The official code (naver-ai/w-ood, ``step/train_cam_clustering.py``) differs: the top-tau% selection is
pooled over the whole batch's B x K distance matrix with a strict '<' against a detached threshold, both
terms are divided by B*K, and an extra 0.25-weighted BCE-to-zero term is computed on one-step
anti-adversarially perturbed OoD images.

Under DDP each of W processes holds B/W images of the global batch. The official formulas take batch-wide
quantities (the selection threshold, the perturbation's normaliser and clamp bounds); with
``across_ranks=True`` those are taken over the global batch, so W processes train exactly as one does.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F


def pairwise_distance(z: torch.Tensor, centres: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distances [B, M] between features [B, D] and centres [M, D] (Eq. 1).

    The square root gets a tiny floor so that a feature sitting on a centre has a finite gradient (the
    official code has none).
    """
    diff = z[:, None, :] - centres[None, :, :].to(z.dtype)
    return diff.pow(2).sum(-1).clamp_min(eps).sqrt()


def num_nearest(tau: float, k: int) -> int:
    """|K(x)|: how many of the K OoD centres count as the top-tau% closest (at least one)."""
    return max(1, math.ceil(tau * k - 1e-9))


def pull_term(z: torch.Tensor, labels: torch.Tensor, class_centres: torch.Tensor,
              class_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image sum of distances to the centres of the image's classes: [B]. Classes without a centre skip."""
    d_in = pairwise_distance(z, class_centres)
    mask = labels > 0.5
    if class_valid is not None:
        mask = mask & class_valid[None, :].to(mask.device)
    return (d_in * mask).sum(1)


def push_term(z: torch.Tensor, ood_centres: torch.Tensor, tau: float) -> torch.Tensor:
    """Per-image sum of distances to its top-tau% nearest OoD centres: [B]."""
    d_ood = pairwise_distance(z, ood_centres)
    n = num_nearest(tau, ood_centres.shape[0])
    return d_ood.topk(n, dim=1, largest=False).values.sum(1)


def distance_loss(z: torch.Tensor, labels: torch.Tensor, class_centres: torch.Tensor, ood_centres: torch.Tensor,
                  tau: float, *, class_valid: torch.Tensor | None = None, use_pull: bool = True,
                  use_push: bool = True) -> torch.Tensor:
    """The paper's L_d (Eq. 2), averaged over the in-distribution images of the batch.

    ``use_pull`` / ``use_push`` are Table 5's "L_d on D_in" (pull to class centres) and "L_d on D_ood"
    (push from OoD centres) switches.
    """
    loss = z.new_zeros(z.shape[0])
    if use_pull:
        loss = loss + pull_term(z, labels, class_centres, class_valid)
    if use_push:
        loss = loss - push_term(z, ood_centres, tau)
    return loss.mean()


def official_distance_loss(z: torch.Tensor, labels: torch.Tensor, class_centres: torch.Tensor,
                           ood_centres: torch.Tensor, tau: float, *, use_pull: bool = True,
                           use_push: bool = True, across_ranks: bool = False) -> torch.Tensor:
    """The official code's L_M: (1/(B*K)) [sum_b sum_{c:y=1} d(z_b, mu_c) - sum_{(b,k): S=1} d(z_b, p_k)].

    S selects the entries of the whole batch's B x K OoD-distance matrix below a detached threshold t,
    the k_keep-th largest of its nonzero entries with k_keep = int(N (1 - tau)): about the tau share of
    smallest distances *of the batch*, so an image may get none or many. The code writes this
    as (20/K) * mean_{B x 20}(F) - mean_{B x K}(O * S), which is the same thing.

    ``across_ranks``: this process holds a slice of the global batch (DDP). t is then taken over every
    rank's distances (gathered, detached: t carries no gradient), and the local sums are divided by
    B_global * K / W, so that the mean over ranks, which DDP's gradient averaging computes, is the
    single-process loss and gradient. The gather is of B x K floats, without gradient traffic.
    """
    b, k = z.shape[0], ood_centres.shape[0]
    world = dist.get_world_size() if across_ranks else 1
    norm = b * k
    total = z.new_zeros(())
    o = pairwise_distance(z, ood_centres) if use_push else None
    if across_ranks and o is not None:
        rows = gather_rows(o.detach())
        norm = rows.shape[0] * k / world
    elif across_ranks:
        norm = float(_reduce_scalar(z.new_tensor(float(b)), dist.ReduceOp.SUM)) * k / world
    if use_pull:
        d_in = pairwise_distance(z, class_centres)
        total = total + (d_in * (labels > 0.5)).sum()
    if o is not None:
        pooled = rows if across_ranks else o.detach()
        vals = pooled[pooled != 0]
        k_keep = int(vals.numel() * (1 - tau))
        if k_keep >= 1:
            t = vals.topk(k_keep, largest=True).values[-1]
            sel = (o.detach() < t).to(o.dtype)
        else:
            sel = torch.ones_like(o)
        total = total - (o * sel).sum()
    return total / norm


def gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Every rank's rows of a (detached) tensor, concatenated in rank order; ranks may hold different counts."""
    world = dist.get_world_size()
    n = torch.tensor([t.shape[0]], device=t.device, dtype=torch.long)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    counts = [int(s.item()) for s in sizes]
    padded = t.new_zeros((max(counts), *t.shape[1:]))
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)])


def _reduce_scalar(value: torch.Tensor, op: dist.ReduceOp) -> torch.Tensor:
    value = value.detach().clone()
    dist.all_reduce(value, op=op)
    return value


def bce_in(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits against the multi-hot labels, mean over B x C (IRN's multilabel soft margin)."""
    return F.binary_cross_entropy_with_logits(logits, labels)


def bce_to_zero(logits: torch.Tensor) -> torch.Tensor:
    """BCE against the all-zero label, mean over B x C: 'no class is in this image' (Eq. 3's OoD term)."""
    return F.softplus(logits).mean()


def uniform_label_loss(logits: torch.Tensor) -> torch.Tensor:
    """Naive baseline: OoD images get the uniform (no-information) label 1/|C| on every class."""
    target = torch.full_like(logits, 1.0 / logits.shape[1])
    return F.binary_cross_entropy_with_logits(logits, target)


def anti_adversarial_step(model: torch.nn.Module, x: torch.Tensor, step: float, *,
                          across_ranks: bool = False) -> torch.Tensor:
    """The official one-step anti-adversarial OoD perturbation: raise each image's top logit.

    x' = clamp(x + step * g / max|g|, min(x), max(x)) with g = d/dx sum_b max_c z_bc; the normaliser and
    the clamp bounds are scalars over the whole batch tensor (as in the official code), over every rank's slice
    of it with ``across_ranks``. Parameter gradients are not touched.
    """
    x_req = x.detach().clone().requires_grad_(True)
    logits, _ = model(x_req)
    (g,) = torch.autograd.grad(logits.max(dim=1).values.sum(), x_req)
    g_max, lo, hi = g.abs().max(), x.detach().min(), x.detach().max()
    if across_ranks:
        g_max = _reduce_scalar(g_max, dist.ReduceOp.MAX)
        lo = _reduce_scalar(lo, dist.ReduceOp.MIN)
        hi = _reduce_scalar(hi, dist.ReduceOp.MAX)
    x_adv = x.detach() + step * g / (g_max + 1e-12)
    return torch.clamp(x_adv, lo.item(), hi.item()).detach()


def official_ood_loss(logits_adv: torch.Tensor, exclude_index: int | None, in_batch_size: int) -> torch.Tensor:
    """sum_b mask_b * (1/C) sum_c softplus(z~_bc) / B_in, dropping images whose top class is excluded.

    The official code excludes 'bottle' (classifier index 4) without a reason given, and divides by the
    in-distribution batch size rather than the number of kept images.
    """
    per_image = F.softplus(logits_adv).mean(dim=1)
    if exclude_index is not None:
        per_image = per_image * (logits_adv.argmax(dim=1) != exclude_index).to(per_image.dtype)
    return per_image.sum() / in_batch_size
