"""AdvCAM seeds (Lee, Kim, Yoon, "Anti-adversarially manipulated attributions", CVPR 2021), computed the
way the official code does (ADV ``obtain_CAM_masking.py`` = WOOD ``get_advcam.py``).

Algorithm, per image, per scale s (the configured scales) and per image class c (ascending classifier
index), each class starting again from the clean input x^0 = [image, hflip(image)] (normalised, at scale s):

    for t = 0 .. T_s - 1:
        F   = stage-4 features of x^t, A0 = classifier(F) (pre-ReLU CAM), both images of the pair
        s_sum = sum_hw ReLU(A0)                                    (global *sum* pooling)
        G   = d(sum_b s_sum[b, c]) / dF
        w_bk = sum_hw G_bk / (#{G > 0 over the whole 2 x K x h x w tensor} + 1e-12)     (constants)
        R_b = ReLU(sum_k w_bk F_bk)                                (Grad-CAM; keeps the graph to x^t)
        R   = R_0 + hflip(R_1);  R^0 = R (detached) at t = 0
        Acc_c += 2 * R (detached)
        s_avg = mean_hw ReLU(A0)                                   (global *average* pooling)
        L_cls = sum_b s_avg[b, c] - sum_b sum_{k != c} s_avg[b, k]
        M   = 1[R / max(R) > adv_score_th]                         (no gradient)
        L_AD = sum |R - R^0| * M
        g   = d(L_cls - adv_coeff * L_AD) / dx^t
        x^{t+1} = clamp(x^t + adv_step * g / (max|g| + 1e-12), min(x^t), max(x^t))

The per-scale maps Acc (n x h_s x w_s) then go through exactly the CAM path of
:func:`woodseg.seeds.cam.multiscale_maps` (AdvCAM is its per-scale hook): bilinear to ceil(H/4) x ceil(W/4) and summed over scales
(``cam``), bilinear to the next multiple of the output stride, summed and cropped (``high_res``), then
each class divided by its max + 1e-5 (:func:`woodseg.seeds.cam.normalise_keys`). No extra ReLU (R >= 0).

Quirks of the official code that are kept, and why (ADV ``obtain_CAM_masking.py``):

* Two different poolings: the Grad-CAM target is the GSP score, L_cls uses GAP. Together with the
  Grad-CAM weight normaliser (sum of gradients over the *global count of positive gradient entries*, not a
  mean over h x w) this sets the scale of R, about CAM / (2 P_c) with P_c = #{k: W_ck > 0} (see
  :func:`gradcam_maps`), and hence the balance between L_AD (lambda = 7) and L_cls.
* L_cls subtracts *every* other model output, present in the image or not, over the image and its flip.
* The restriction mask comes from the *current* map at a share of its own max, not from R^0.
* The step divides the gradient by its global max |g| (not a sign step) and clamps to the current tensor's
  global min/max (not an L-inf ball around x^0); the bounds only shrink, so x stays in [min x^0, max x^0].
* T_s = floor(T / 2) at scale 0.5 and T elsewhere (T = ``adv_iters``).
* The accumulation includes t = 0 (the clean image's Grad-CAM) and never maps the last x^T; the last
  update step is still computed, as the code does (its result is unused; ``anti_adversarial`` returns it).
* The accumulation weight: the code assigns ``mul = 2`` only in its scale-0.5 branch, which it runs first,
  so the value leaks to every scale. We use 2 everywhere; a common factor cancels in the max
  normalisation except for its tiny interplay with the +1e-5, which this keeps identical.
* The official code walks the scales in the order 0.5, 1.0, 1.5, 2.0. Every (scale, class) starts from the
  clean image, so the order only matters for the ``mul`` leak above; we process and sum the scales in the
  configured order, like :func:`~woodseg.seeds.cam.multiscale_maps`.

Generalisations (no counterpart in the code): with ``flip=False`` the pair is just [image] and R = R_0;
a model with an extra background output subtracts it in L_cls like any other output.

The model stays in eval mode and is never updated: all gradients are taken with
:func:`torch.autograd.grad` with respect to the features / the input only, so no parameter gets a
``.grad``.

Cost: for every scale and every class of the image, T_s forward passes of the [image, flip] pair plus one
full backward pass to the input each (the Grad-CAM backward only reaches the 1x1 classifier). With the
default T = 27 and scales (1.0, 0.5, 1.5, 2.0) that is 94 forward+backward passes per class, so about
100-200x the cost of a plain CAM seed; images are processed one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from woodseg.config import CamConfig
from woodseg.data.transforms import hwc_to_tensor, normalize, rescale
from woodseg.errors import ConfigError
from woodseg.models.cam_net import CamNet
from woodseg.seeds.cam import ScaleMap, multiscale_maps

#: The official code's ``mul``: 2 at scale 0.5, leaking to every scale (see the module docstring).
ACC_WEIGHT = 2.0


@dataclass(frozen=True)
class AdvParams:
    """The anti-adversarial parameters (official defaults: T = 27, xi = 0.08, lambda = 7, tau = 0.5)."""

    iters: int = 27
    step: float = 0.08
    coeff: float = 7.0
    score_th: float = 0.5

    @classmethod
    def from_config(cls, cam: CamConfig) -> AdvParams:
        return cls(cam.adv_iters, cam.adv_step, cam.adv_coeff, cam.adv_score_th)

    def iters_at(self, scale: float) -> int:
        """T at this scale: floor(T / 2) at scale 0.5, as the official code."""
        return self.iters // 2 if scale == 0.5 else self.iters


@dataclass
class AdvTrace:
    """One (scale, class) run: the accumulated map, the final input and per-iteration diagnostics."""

    acc: torch.Tensor                                    # [h, w] sum over t of ACC_WEIGHT * R(x^t)
    x: torch.Tensor                                      # x^T, the input after the last update
    l_cls: list[float] = field(default_factory=list)     # L_cls(x^t), t = 0..T-1
    score: list[float] = field(default_factory=list)     # sum_b s_avg[b, c] at x^t
    l_ad: list[float] = field(default_factory=list)      # L_AD(x^t)


def gradcam_weights(grad: torch.Tensor) -> torch.Tensor:
    """Grad-CAM weights of the official ``gradcam.py``: [B, K] = sum_hw G / (#{G > 0} over all of G + 1e-12)."""
    return grad.sum(dim=(2, 3)) / ((grad > 0).sum() + 1e-12)


def gradcam_maps(model: CamNet, x: torch.Tensor, c: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image Grad-CAM maps R_b [B, h, w] of class ``c`` (graph to ``x`` kept) and the pre-ReLU CAM A0.

    The target is the GSP score sum_b sum_hw ReLU(A0[b, c]); the weights are detached constants. Since A0
    is linear in F this equals ReLU(A0[b, c]) * n_b / (P_c * sum_b' n_b') with n_b the number of positive
    positions of A0[b, c] and P_c = #{k: W_ck > 0} (the Grad-CAM identity that :func:`gradcam_maps` tests).
    """
    feats = model.feature_map(x)
    a0 = model.classifier(feats)
    s_sum = torch.relu(a0).sum(dim=(2, 3))
    (grad,) = torch.autograd.grad(s_sum[:, c].sum(), feats, retain_graph=True)
    w = gradcam_weights(grad).detach()
    r = torch.relu(torch.einsum("bk,bkhw->bhw", w.to(feats.dtype), feats))
    return r, a0


def _flip_sum(r: torch.Tensor) -> torch.Tensor:
    """[B, h, w] -> [h, w]: the first map plus the un-flipped second (B = 2), or the only map (B = 1)."""
    return r[0] + r[1].flip(-1) if r.shape[0] == 2 else r[0]


def anti_adversarial(model: CamNet, x0: torch.Tensor, c: int, iters: int, params: AdvParams) -> AdvTrace:
    """Run the anti-adversarial loop for class ``c`` from the clean pair ``x0`` [B, 3, H, W] (B = 1 or 2)."""
    x = x0.detach().clone()
    acc = None
    r0 = None
    trace = AdvTrace(acc=torch.zeros(0), x=x)
    with torch.enable_grad():
        for t in range(iters):
            x = x.detach().requires_grad_(True)
            r_b, a0 = gradcam_maps(model, x, c)
            r = _flip_sum(r_b)
            if t == 0:
                r0 = r.detach()
            acc = ACC_WEIGHT * r.detach() if acc is None else acc + ACC_WEIGHT * r.detach()
            s_avg = torch.relu(a0).mean(dim=(2, 3))
            own = s_avg[:, c].sum()
            l_cls = own - (s_avg.sum() - own)  # all other outputs, present or not, both images
            with torch.no_grad():
                mask = (r / r.max()) > params.score_th  # an all-zero map gives NaN > th = False
            l_ad = ((r - r0).abs() * mask).sum()
            (g,) = torch.autograd.grad(l_cls - params.coeff * l_ad, x)
            l_cls, own, l_ad = l_cls.detach(), own.detach(), l_ad.detach()
            with torch.no_grad():
                x = torch.clamp(x + params.step * g / (g.abs().max() + 1e-12), x.min(), x.max())
            trace.l_cls.append(l_cls.item())
            trace.score.append(own.item())
            trace.l_ad.append(l_ad.item())
    if acc is None:  # T = 0 (or floor(1/2) at scale 0.5): nothing is mapped, the map is zero
        with torch.no_grad():
            h, w = model.feature_map(x0[:1]).shape[-2:]
        acc = x0.new_zeros(h, w)
    trace.acc, trace.x = acc, x.detach()
    return trace


def pair_tensor(model: CamNet, image: np.ndarray, scale: float, flip: bool = True,
                device: str | torch.device = "cpu") -> torch.Tensor:
    """The normalised [image, hflip(image)] batch at ``scale``, exactly as :func:`~woodseg.seeds.cam.multiscale_maps` makes it."""
    x = hwc_to_tensor(normalize(rescale(image, scale)))[None].to(device)
    if flip:
        x = torch.cat([x, x.flip(-1)])
    if model.cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def advcam_scale_map(model: CamNet, params: AdvParams, flip: bool = True) -> ScaleMap:
    """AdvCAM's hook in :func:`woodseg.seeds.cam.multiscale_maps`: per image and class, the accumulated map.

    ``x`` holds the batch at one scale ([images] or [images, mirrored images]); each image's pair is run
    alone (one image at a time), each of its classes from the clean pair; other outputs stay zero.
    ``params.iters`` = 0 would map nothing (all-zero seeds) and is refused.
    """
    if params.iters < 1:
        raise ConfigError("cam.adv_iters=0: AdvCAM maps nothing without an iteration (every seed would be zero)",
                          fix="set cam.adv_iters >= 1 (official: 27), or use cam.method=cam")

    def fn(x: torch.Tensor, keys: Sequence[np.ndarray], scale: float) -> torch.Tensor:
        n = len(keys)
        out: torch.Tensor | None = None
        for j, k in enumerate(keys):
            x0 = x[[j, n + j]] if flip else x[[j]]
            for c in k:
                acc = anti_adversarial(model, x0, int(c), params.iters_at(scale), params).acc.float()
                if out is None:
                    out = acc.new_zeros(n, model.num_outputs, *acc.shape)
                out[j, int(c)] = acc
        if out is None:  # no image of the batch has a class: nothing to map
            with torch.no_grad():
                h, w = model.feature_map(x[:1]).shape[-2:]
            out = x.new_zeros(n, model.num_outputs, h, w, dtype=torch.float32)
        return out

    return fn


def advcam_multiscale(model: CamNet, image: np.ndarray, keys: Sequence[int], scales: Sequence[float],
                      params: AdvParams, flip: bool = True,
                      device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Un-normalised AdvCAM maps of one image for classes ``keys``: (stride-4 [n, h4, w4], full-res [n, H, W])."""
    idx = torch.as_tensor(np.asarray(keys, np.int64))
    was_training = model.training
    model.eval()
    try:
        cam4, high = multiscale_maps(model, [image], [np.asarray(keys, np.int64)], scales,
                                     advcam_scale_map(model, params, flip), flip, device)
    finally:
        model.train(was_training)
    return cam4[0, idx], high[0, idx]
