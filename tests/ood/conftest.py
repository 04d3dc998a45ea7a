"""Fixtures for the hard-OoD collection tests (helpers live in ood_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ood_helpers import make_checkpoint, make_images


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pool_images")
    make_images(folder, 12, seed=1)
    return folder


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "last.pt")
