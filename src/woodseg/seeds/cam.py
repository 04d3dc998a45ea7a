"""Multi-scale + flip CAM seeds, exactly as IRN's ``step/make_cam.py``; the one loop AdvCAM shares.

Per scale s: PIL-bicubic rescale (round-half-to-even sizes), normalise, run [image, flipped image] as a
batch of two, take ReLU(CAM) and sum the first with the un-flipped second (ReLU *before* the flip-sum).
The stride-4 map is each scale's map resized bilinearly to ceil(H/4) x ceil(W/4) and summed over scales;
the full-resolution map is resized to the next multiple of the output stride and cropped to H x W (not a
direct resize). Only the image's own classes are kept, each divided by its spatial max + 1e-5.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from woodseg.data.dataset import LabelledImageSet
from woodseg.data.images import image_size, load_image
from woodseg.data.transforms import hwc_to_tensor, normalize, rescale
from woodseg.models.cam_net import CamNet
from woodseg.runtime.amp import amp_dtype, autocast
from woodseg.runtime.driver import ItemFolder, run_items
from woodseg.runtime.shard import Shard
from woodseg.seeds.store import Seed, save_seed


def strided(n: int, stride: int) -> int:
    """ceil(n / stride): the size of a map at that stride."""
    return (n - 1) // stride + 1


def strided_up(n: int, stride: int) -> int:
    return strided(n, stride) * stride


def output_stride(model: CamNet) -> int:
    s = model.cfg.strides
    return s[0] * 2 * s[1] * s[2] * s[3]  # conv1, maxpool, layer2, layer3, layer4


#: ``scale_map(x, keys, scale) -> [B, num_outputs, h, w]``: one scale's un-normalised maps of a batch. ``x`` is the
#: batch at that scale, [B images] or [B images, B mirrored images] with ``flip``; ``keys`` are each image's
#: classes. CAM and AdvCAM differ only in this hook (as pytorch-grad-cam's methods override one method).
ScaleMap = Callable[[torch.Tensor, Sequence[np.ndarray], float], torch.Tensor]


def cam_scale_map(model: CamNet, flip: bool = True) -> ScaleMap:
    """IRN's per-scale CAM: ReLU(CAM) of the batch, the mirrored half un-flipped and added (ReLU before the sum).

    On CUDA the forward runs under ``runtime.amp``'s autocast (:mod:`woodseg.runtime.amp`); on a CPU in float32.
    """
    def fn(x: torch.Tensor, keys: Sequence[np.ndarray], scale: float) -> torch.Tensor:
        with torch.no_grad(), autocast(x.device, amp_dtype(x.device)):
            a = model.cam(x).float()
        if flip:
            n = len(keys)
            a = a[:n] + a[n:].flip(-1)
        return a

    return fn


def multiscale_maps(model: CamNet, images: Sequence[np.ndarray], keys: Sequence[np.ndarray],
                    scales: Sequence[float], scale_map: ScaleMap, flip: bool = True,
                    device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The one multi-scale + flip loop: (stride-4 [B, C, h4, w4], full-res [B, C, H, W]) summed over scales.

    Per scale: PIL-bicubic rescale, normalise, [images, mirrored images], ``scale_map``; each scale's map
    bilinear to ceil(H/4) x ceil(W/4), and to the next multiple of the output stride then cropped to H x W.
    """
    h, w = images[0].shape[:2]
    ostride = output_stride(model)
    size4 = (strided(h, 4), strided(w, 4))
    size_up = (strided_up(h, ostride), strided_up(w, ostride))
    channels_last = model.cfg.channels_last
    cam4 = high = None
    for s in scales:
        x = torch.stack([hwc_to_tensor(normalize(rescale(im, s))) for im in images]).to(device)
        if flip:
            x = torch.cat([x, x.flip(-1)])
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        a = scale_map(x, keys, s)
        a4 = F.interpolate(a, size4, mode="bilinear", align_corners=False)
        ah = F.interpolate(a, size_up, mode="bilinear", align_corners=False)[:, :, :h, :w]
        cam4 = a4 if cam4 is None else cam4 + a4
        high = ah if high is None else high + ah
    return cam4, high


def multiscale_cams(model: CamNet, images: Sequence[np.ndarray], scales: Sequence[float], flip: bool = True,
                    device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Summed CAMs of a batch of equally sized images: (stride-4 [B, C, h4, w4], full-res [B, C, H, W])."""
    no_keys = [np.zeros(0, np.int64)] * len(images)
    return multiscale_maps(model, images, no_keys, scales, cam_scale_map(model, flip), flip, device)


def normalise_keys(maps: torch.Tensor, keys: np.ndarray) -> np.ndarray:
    """Keep the image's classes and divide each by its max + 1e-5: [n, h, w] in [0, 1)."""
    sel = maps[torch.as_tensor(keys, dtype=torch.long)]
    peak = sel.flatten(1).max(1).values[:, None, None]
    return (sel / (peak + 1e-5)).cpu().numpy()


def make_cams(model: CamNet, ds: LabelledImageSet, ids: Sequence[str], out_dir: Path, *, scales: Sequence[float],
              flip: bool = True, dtype: str = "float32", device: str | torch.device = "cpu", batch_size: int = 8,
              protocol: dict | None = None, inputs: dict | None = None, restart: bool = False, skip_bad: bool = False,
              progress: bool = True, scale_map: ScaleMap | None = None, shard: Shard = Shard()) -> list[str]:
    """Write ``<out_dir>/<id>.npz`` for this shard's ids without one; returns the ids written. Resumable.

    ``scale_map`` replaces :func:`cam_scale_map` (e.g. AdvCAM, :func:`woodseg.seeds.advcam.advcam_scale_map`).
    Batching, resume, sharding and the bad-image policy are :func:`woodseg.runtime.driver.run_items`'.
    """
    model.eval()
    scale_map = scale_map or cam_scale_map(model, flip)

    def compute(batch: list[tuple[str, np.ndarray]]) -> list[Seed]:
        all_keys = [np.flatnonzero(ds.label(image_id) > 0.5).astype(np.int64) for image_id, _ in batch]
        cam4, high = multiscale_maps(model, [im for _, im in batch], all_keys, scales, scale_map, flip, device)
        return [Seed(keys, normalise_keys(cam4[j], keys).astype(dtype), normalise_keys(high[j], keys).astype(dtype),
                     np.asarray(scales, np.float32), im.shape[:2])
                for j, ((_, im), keys) in enumerate(zip(batch, all_keys, strict=True))]

    report = run_items(ItemFolder(Path(out_dir)), ids, protocol=protocol or {}, inputs=inputs,
                       key=lambda image_id: image_size(ds.image_path(image_id)),
                       load=lambda image_id: load_image(ds.image_path(image_id)), compute=compute, write=save_seed,
                       batch_size=batch_size, shard=shard, restart=restart,
                       on_bad_image="skip" if skip_bad else "error", progress=progress, desc="seeds")
    return report.written
