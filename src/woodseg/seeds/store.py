"""The seed file format: one ``<id>.npz`` per image (no pickle, no torch needed to read it).

Keys:
    keys      int64 [n]          classifier indices of the image's classes (ascending); VOC label = key + 1
    cam       float [n, h4, w4]  stride-4 map, h4 = ceil(H/4), w4 = ceil(W/4), each class max-normalised
    high_res  float [n, H, W]    full-resolution map, each class max-normalised
    scales    float [s]          the inference scales
    size      int64 [2]          (H, W) of the image
Maps are in [0, 1]; float32 or float16 as the config asks. A folder of seeds has ``index.json`` with the
protocol (method, checkpoint, scales, flip, dtype, class list) and the classifier's content hash that made
them (written and checked by :mod:`woodseg.runtime.driver`): a re-run with another protocol refuses to mix
files (pass --restart), a re-run with another classifier remakes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from woodseg.errors import DataError
from woodseg.fsutil import atomic_save


@dataclass
class Seed:
    keys: np.ndarray
    cam: np.ndarray
    high_res: np.ndarray
    scales: np.ndarray
    size: tuple[int, int]


def save_seed(path: str | Path, seed: Seed) -> None:
    atomic_save(path, lambda buf: np.savez(buf, keys=seed.keys.astype(np.int64), cam=seed.cam,
                                           high_res=seed.high_res, scales=np.asarray(seed.scales, np.float32),
                                           size=np.asarray(seed.size, np.int64)))


def load_seed(path: str | Path) -> Seed:
    path = Path(path)
    if not path.is_file():
        raise DataError("seed file does not exist", path=path, fix="run `woodseg cam` for this split first")
    try:
        with np.load(path, allow_pickle=False) as f:
            return Seed(f["keys"], f["cam"], f["high_res"], f["scales"], tuple(int(v) for v in f["size"]))
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"seed file is corrupt ({exc})", path=path, fix="delete it and re-run `woodseg cam`") from exc


def read_index(folder: Path) -> dict[str, Any]:
    index = folder / "index.json"
    if not index.exists():
        raise DataError("seed folder has no index.json", path=folder, fix="run `woodseg cam` first")
    return json.loads(index.read_text())
