"""Multi-scale + flip CAM seeds, exactly as IRN's make_cam (reference-spec 2.4, pitfall 8).

Per scale s: PIL-bicubic rescale (round-half-to-even sizes), normalise, run [image, flipped image] as a
batch of two, take ReLU(CAM) and sum the first with the un-flipped second (ReLU *before* the flip-sum).
The stride-4 map is each scale's map resized bilinearly to ceil(H/4) x ceil(W/4) and summed over scales;
the full-resolution map is resized to the next multiple of the output stride and cropped to H x W (not a
direct resize). Only the image's own classes are kept, each divided by its spatial max + 1e-5.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from woodseg.data.dataset import LabelledImageSet
from woodseg.data.images import load_image
from woodseg.data.transforms import hwc_to_tensor, normalize, rescale
from woodseg.errors import ImageError
from woodseg.models.cam_net import CamNet
from woodseg.seeds.store import Seed, check_index, save_seed

log = logging.getLogger(__name__)


def strided(n: int, stride: int) -> int:
    """ceil(n / stride): the size of a map at that stride."""
    return (n - 1) // stride + 1


def strided_up(n: int, stride: int) -> int:
    return strided(n, stride) * stride


def output_stride(model: CamNet) -> int:
    s = model.cfg.strides
    return s[0] * 2 * s[1] * s[2] * s[3]  # conv1, maxpool, layer2, layer3, layer4


def multiscale_cams(model: CamNet, images: Sequence[np.ndarray], scales: Sequence[float], flip: bool = True,
                    device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Summed CAMs of a batch of equally sized images: (stride-4 [B, C, h4, w4], full-res [B, C, H, W])."""
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
        with torch.no_grad():
            a = model.cam(x).float()
        if flip:
            n = len(images)
            a = a[:n] + a[n:].flip(-1)
        a4 = F.interpolate(a, size4, mode="bilinear", align_corners=False)
        ah = F.interpolate(a, size_up, mode="bilinear", align_corners=False)[:, :, :h, :w]
        cam4 = a4 if cam4 is None else cam4 + a4
        high = ah if high is None else high + ah
    return cam4, high


#: ``seed_fn(images, keys per image) -> (stride-4 maps, full-res maps)``, every model output, un-normalised.
SeedFn = Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], tuple[torch.Tensor, torch.Tensor]]


def normalise_keys(maps: torch.Tensor, keys: np.ndarray) -> np.ndarray:
    """Keep the image's classes and divide each by its max + 1e-5: [n, h, w] in [0, 1)."""
    sel = maps[torch.as_tensor(keys, dtype=torch.long)]
    peak = sel.flatten(1).max(1).values[:, None, None]
    return (sel / (peak + 1e-5)).cpu().numpy()


def make_cams(model: CamNet, ds: LabelledImageSet, ids: Sequence[str], out_dir: Path, *, scales: Sequence[float],
              flip: bool = True, dtype: str = "float32", device: str | torch.device = "cpu", batch_size: int = 8,
              protocol: dict | None = None, restart: bool = False, skip_bad: bool = False,
              progress: bool = True, seed_fn: SeedFn | None = None) -> list[str]:
    """Write ``<out_dir>/<id>.npz`` for every id without one; returns the ids written. Resumable.

    ``seed_fn(images, keys)`` replaces :func:`multiscale_cams` (e.g. AdvCAM,
    :func:`woodseg.seeds.advcam.advcam_seed_fn`): it gets a batch of equally sized images and each one's
    class indices and returns un-normalised (stride-4 [B, C, h4, w4], full-res [B, C, H, W]) maps.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_index(out_dir, protocol or {}, restart)
    todo = [i for i in ids if not (out_dir / f"{i}.npz").exists()]
    model.eval()
    groups: dict[tuple[int, int], list[tuple[str, np.ndarray]]] = defaultdict(list)
    written: list[str] = []
    bar = tqdm(total=len(todo), desc="cams", unit="img", disable=not progress, dynamic_ncols=True)

    def flush(items: list[tuple[str, np.ndarray]]) -> None:
        all_keys = [np.flatnonzero(ds.label(image_id) > 0.5).astype(np.int64) for image_id, _ in items]
        if seed_fn is None:
            cam4, high = multiscale_cams(model, [im for _, im in items], scales, flip, device)
        else:
            cam4, high = seed_fn([im for _, im in items], all_keys)
        for j, ((image_id, im), keys) in enumerate(zip(items, all_keys, strict=True)):
            seed = Seed(keys, normalise_keys(cam4[j], keys).astype(dtype), normalise_keys(high[j], keys).astype(dtype),
                        np.asarray(scales, np.float32), im.shape[:2])
            save_seed(out_dir / f"{image_id}.npz", seed)
            written.append(image_id)
        bar.update(len(items))

    for image_id in todo:
        try:
            im = load_image(ds.image_path(image_id))
        except ImageError as exc:
            if not skip_bad:
                raise
            log.warning("skipping %s", exc)
            bar.update(1)
            continue
        group = groups[im.shape[:2]]
        group.append((image_id, im))
        if len(group) == batch_size:
            flush(group)
            groups[im.shape[:2]] = []
    for group in groups.values():
        if group:
            flush(group)
    bar.close()
    return written
