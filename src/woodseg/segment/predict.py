"""Whole-image inference of the segmentation network: scales x flip, fused, optional dense CRF."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from woodseg.refine.crf import SOFTMAX_CRF, CrfParams, crf_probs
from woodseg.runtime.amp import amp_dtype, autocast
from woodseg.runtime.batching import is_channels_last


@torch.no_grad()
def predict_probs(model: nn.Module, x: torch.Tensor, scales: Sequence[float] = (1.0,), flip: bool = True,
                  fuse: str = "mean", amp: bool = True) -> torch.Tensor:
    """Class probabilities [C, H, W] (float32) of one input [3, H, W] (see ``segment.data.to_input``).

    Logits of every scale (and its mirror) are upsampled bilinearly to H x W and fused by ``mean`` or
    ``max`` before the softmax. The model is the eval-mode MSC network, so each pass is itself the
    max over its MSC scales. On CUDA with ``amp`` the network runs under autocast (bfloat16 if supported,
    else float16); inputs follow the model's memory format (channels_last).
    """
    if fuse not in ("mean", "max"):
        raise ValueError(f"fuse must be 'mean' or 'max', got {fuse!r}")
    model.eval()
    h, w = x.shape[-2:]
    dtype = amp_dtype(x.device) if amp else None
    nhwc = is_channels_last(model)
    maps = []
    for s in scales:
        xs = x[None] if s == 1.0 else F.interpolate(x[None], scale_factor=s, mode="bilinear", align_corners=False)
        batch = torch.cat([xs, xs.flip(-1)]) if flip else xs
        if nhwc:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with autocast(x.device, dtype):
            raw = model(batch)
        logits = F.interpolate(raw.float(), size=(h, w), mode="bilinear", align_corners=False)
        maps.append(logits[0])
        if flip:
            maps.append(logits[1].flip(-1))
    stacked = torch.stack(maps)
    fused = stacked.mean(0) if fuse == "mean" else stacked.max(0).values
    return fused.softmax(0)


def predict_labels(model: nn.Module, x: torch.Tensor, image: np.ndarray | None = None,
                   scales: Sequence[float] = (1.0,), flip: bool = True, fuse: str = "mean",
                   crf: CrfParams | None = None) -> np.ndarray:
    """Label map HxW uint8; with ``crf`` (e.g. ``SOFTMAX_CRF``) the probabilities are refined on ``image``
    (RGB uint8) first, as deeplab-pytorch's post-processing does."""
    probs = predict_probs(model, x, scales, flip, fuse).cpu().numpy()
    if crf is not None:
        if image is None:
            raise ValueError("the CRF needs the RGB image")
        probs = crf_probs(image, probs, crf)
    return probs.argmax(0).astype(np.uint8)


__all__ = ["SOFTMAX_CRF", "predict_labels", "predict_probs"]
