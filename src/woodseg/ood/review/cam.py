"""Why the classifier fired: a candidate's CAM for the class under review, as a see-through PNG overlay.

The map comes from the ranking run's own checkpoint and its image size (``long_side``), so it shows the
evidence behind the p(c) the candidate was ranked by (p(c) is the sigmoid of the spatial mean of the raw
CAM, Sec. 3 of the paper). It is computed with :func:`woodseg.seeds.cam.multiscale_cams` at one scale, no
flip, normalised by its peak (:func:`woodseg.seeds.cam.normalise_keys`), coloured with the jet map the
report figures use, and cached on disk: one forward pass per candidate, ever.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from PIL import Image

from woodseg.data.images import load_image
from woodseg.data.transforms import resize_long
from woodseg.fsutil import atomic_write_bytes

MAX_ALPHA = 0.7


class CamUnavailable(Exception):
    """No CAM can be drawn (no checkpoint known, missing file, class not in the checkpoint); says why."""


class CamOverlays:
    """CAM overlays of one review database, cached as ``<db>.cams/<candidate>.png`` beside it."""

    def __init__(self, meta: dict[str, Any], cache_dir: Path, device: str = "cpu") -> None:
        self.checkpoint = meta.get("checkpoint")
        self.long_side = meta.get("long_side", 500)
        self.cache_dir = cache_dir
        self.device = device
        self._model: Any = None
        self._names: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def unavailable(self) -> str | None:
        """Why no overlay can be made, or None when the checkpoint is there."""
        if not self.checkpoint:
            return ("no CAM: the ranking this review was made from names no checkpoint "
                    "(rank with `woodseg ood rank --checkpoint ...` to get overlays)")
        if not Path(self.checkpoint).is_file():
            return f"no CAM: the ranking's checkpoint {self.checkpoint} is missing (restore it to get overlays)"
        return None

    def png(self, candidate: int, class_name: str, image_path: Path) -> bytes:
        """The overlay of ``candidate`` (cached; recomputed when the image file is newer than the cache)."""
        reason = self.unavailable()
        if reason is not None:
            raise CamUnavailable(reason)
        cached = self.cache_dir / f"{candidate}.png"
        try:
            if cached.stat().st_mtime_ns >= image_path.stat().st_mtime_ns:
                return cached.read_bytes()
        except OSError:
            pass
        with self._lock:
            heat = self._heat(class_name, image_path)
        data = heat_png(heat)
        atomic_write_bytes(cached, data)
        return data

    def _heat(self, class_name: str, image_path: Path) -> np.ndarray:
        import torch

        from woodseg.models.cam_net import load_classifier
        from woodseg.seeds.cam import multiscale_cams, normalise_keys

        if self._model is None:
            self._model, self._names = load_classifier(self.checkpoint, self.device)  # type: ignore[arg-type]
            self._model.eval()
        if class_name not in self._names:
            raise CamUnavailable(f"no CAM: the checkpoint has no class '{class_name}'")
        img = load_image(image_path)
        if self.long_side:
            img = resize_long(img, int(self.long_side))
        _, high = multiscale_cams(self._model, [img], scales=(1.0,), flip=False, device=self.device)
        key = np.array([self._names.index(class_name)])
        with torch.no_grad():
            return normalise_keys(high[0].cpu(), key)[0]


def heat_png(heat: np.ndarray) -> bytes:
    """A jet-coloured RGBA PNG of a map in [0, 1]; alpha grows with the value so cold context stays visible."""
    heat = np.clip(np.nan_to_num(heat), 0.0, 1.0)
    rgba = colormaps["jet"](heat)
    rgba[..., 3] = MAX_ALPHA * heat
    buf = io.BytesIO()
    Image.fromarray((rgba * 255).round().astype(np.uint8), mode="RGBA").save(buf, format="PNG")
    return buf.getvalue()
