"""score_pool: p(c) = sigmoid(logit) per image at a fixed long side, exact and batch-independent."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from ood_helpers import CLASSES

from woodseg.data.images import load_image
from woodseg.data.ood_list import ood_from_folder
from woodseg.data.transforms import hwc_to_tensor, normalize, resize_long
from woodseg.errors import ConfigError, ImageError
from woodseg.models.cam_net import load_classifier
from woodseg.ood.scoring import iter_scores, score_pool, score_pool_full


@pytest.fixture(scope="module")
def model(checkpoint: Path):
    net, names = load_classifier(checkpoint)
    assert names == CLASSES
    return net


def _reference(model, path: Path, long_side: int) -> np.ndarray:
    x = hwc_to_tensor(normalize(resize_long(load_image(path), long_side)))[None]
    model.eval()
    with torch.no_grad():
        logits, _ = model(x)
    return torch.sigmoid(logits[0]).numpy()


def test_scores_equal_the_model_forward_per_image(model, image_dir: Path):
    ood = ood_from_folder(image_dir)
    seen = []
    scores = score_pool(model, ood, CLASSES, batch_size=4, long_side=48, progress=seen.append)
    assert scores.shape == (len(ood), 3) and scores.dtype == np.float32
    assert sum(seen) == len(ood)
    for i in (0, 5, 11):
        np.testing.assert_allclose(scores[i], _reference(model, ood.paths[i], 48), atol=2e-5)
    assert ((scores > 0) & (scores < 1)).all()


def test_scores_do_not_depend_on_batching_or_threads(model, image_dir: Path):
    ood = ood_from_folder(image_dir)
    one = score_pool(model, ood, CLASSES, batch_size=1, long_side=40)
    many = score_pool(model, ood, CLASSES, batch_size=5, long_side=40, workers=2)
    np.testing.assert_allclose(one, many, atol=2e-5)


def test_corrupt_image_errors_by_default_and_is_skipped_when_asked(model, image_dir: Path, tmp_path: Path):
    folder = tmp_path / "pool"
    shutil.copytree(image_dir, folder)
    (folder / "img003.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    ood = ood_from_folder(folder)
    with pytest.raises(ImageError, match="img003.jpg"):
        score_pool(model, ood, CLASSES, long_side=32)
    full = score_pool_full(model, ood, CLASSES, long_side=32, on_bad_image="skip")
    assert np.isnan(full.scores[3]).all() and not np.isnan(np.delete(full.scores, 3, 0)).any()
    assert [i for i, _ in full.failed] == [3] and "img003.jpg" in full.failed[0][1]


def test_subset_of_indices_and_chunks(model, image_dir: Path):
    ood = ood_from_folder(image_dir)
    chunks = list(iter_scores(model, ood, CLASSES, indices=[7, 2, 9], batch_size=2, chunk_size=2, long_side=32))
    assert [c.indices.tolist() for c in chunks] == [[7, 2], [9]]
    full = score_pool(model, ood, CLASSES, long_side=32)
    np.testing.assert_allclose(np.concatenate([c.scores for c in chunks]), full[[7, 2, 9]], atol=2e-5)


def test_training_mode_is_restored_and_class_count_checked(model, image_dir: Path):
    ood = ood_from_folder(image_dir).subset([0])
    model.train()
    score_pool(model, ood, CLASSES, long_side=32)
    assert model.training
    model.eval()
    with pytest.raises(ConfigError, match="3 outputs but 4 class names"):
        score_pool(model, ood, (*CLASSES, "extra"), long_side=32)
    with pytest.raises(ConfigError, match="unknown flag"):
        score_pool_full(model, ood, CLASSES, flags=("sharpness",))
