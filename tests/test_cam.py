"""CAM seeds: shapes, per-class max normalisation, flip and scale consistency, the file format."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from woodseg.config import ModelConfig
from woodseg.data.dataset import LabelledImageSet
from woodseg.data.transforms import hwc_to_tensor, normalize
from woodseg.errors import DataError
from woodseg.models.cam_net import build_cam_net
from woodseg.seeds.cam import make_cams, multiscale_cams, normalise_keys, output_stride, strided, strided_up
from woodseg.seeds.store import Seed, load_seed, save_seed


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet10", weights=None, freeze_bn=True, frozen_stages=0, channels_last=False)
    net = build_cam_net(cfg, 3).eval()
    with torch.no_grad():  # positive weights on non-negative features: every class map is non-zero
        net.classifier.weight.abs_()
    return net


def _image(h=37, w=50, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_strided_sizes():
    assert strided(37, 4) == 10 and strided(40, 4) == 10 and strided(41, 4) == 11
    assert strided_up(37, 16) == 48 and strided_up(48, 16) == 48


def test_single_scale_matches_irn_construction(model):
    img = _image()
    cam4, high = multiscale_cams(model, [img], [1.0], flip=True)
    x = hwc_to_tensor(normalize(img))[None]
    with torch.no_grad():
        a = torch.relu(model.cam_raw(torch.cat([x, x.flip(-1)])))  # ReLU before the flip-sum
    a = a[:1] + a[1:].flip(-1)
    os_ = output_stride(model)
    assert os_ == 16
    exp4 = F.interpolate(a, (10, 13), mode="bilinear", align_corners=False)
    exph = F.interpolate(a, (48, 64), mode="bilinear", align_corners=False)[:, :, :37, :50]
    torch.testing.assert_close(cam4, exp4)
    torch.testing.assert_close(high, exph)


def _dataset(tmp_path, images, labels):
    paths = {}
    from PIL import Image

    for i, im in enumerate(images):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(im).save(p)
        paths[f"im{i}"] = p
    return LabelledImageSet(("a", "b", "c"), {"s": list(paths)}, {k: np.asarray(v, np.float32)
                                                                  for k, v in zip(paths, labels, strict=True)}, paths)


def test_make_cams_shapes_keys_and_normalisation(model, tmp_path):
    img = _image()
    ds = _dataset(tmp_path, [img], [[1, 0, 1]])
    make_cams(model, ds, ["im0"], tmp_path / "cams", scales=[1.0, 0.5], progress=False, protocol={"p": 1})
    seed = load_seed(tmp_path / "cams" / "im0.npz")
    np.testing.assert_array_equal(seed.keys, [0, 2])
    assert seed.cam.shape == (2, 10, 13) and seed.high_res.shape == (2, 37, 50)
    assert seed.size == (37, 50)
    for m in (seed.cam, seed.high_res):
        assert m.min() >= 0
        peaks = m.reshape(2, -1).max(1)
        assert np.all(peaks < 1.0) and np.all(peaks > 0.999)


def test_flip_equivariance(model, tmp_path):
    img = _image(32, 48, seed=3)
    ds = _dataset(tmp_path, [img, img[:, ::-1].copy()], [[1, 1, 1], [1, 1, 1]])
    make_cams(model, ds, ["im0", "im1"], tmp_path / "c", scales=[1.0, 0.5, 1.5], progress=False)
    a, b = load_seed(tmp_path / "c" / "im0.npz"), load_seed(tmp_path / "c" / "im1.npz")
    np.testing.assert_allclose(a.cam, b.cam[:, :, ::-1], atol=1e-5)
    np.testing.assert_allclose(a.high_res, b.high_res[:, :, ::-1], atol=1e-5)


def test_all_zero_class_map_stays_zero():
    maps = torch.zeros(2, 4, 4)
    maps[1, 1, 1] = 3.0
    out = normalise_keys(maps, np.array([0, 1]))
    assert out[0].max() == 0 and out[1].max() == pytest.approx(1.0, abs=1e-5)


def test_repeated_scale_gives_same_normalised_map(model):
    img = _image()
    keys = np.array([0, 1, 2])
    c1, h1 = multiscale_cams(model, [img], [1.0])
    c2, h2 = multiscale_cams(model, [img], [1.0, 1.0])
    np.testing.assert_allclose(normalise_keys(h1[0], keys), normalise_keys(h2[0], keys), atol=1e-6)


def test_batched_equals_one_by_one(model):
    imgs = [_image(seed=s) for s in range(3)]
    c_all, h_all = multiscale_cams(model, imgs, [1.0, 0.5])
    for j, im in enumerate(imgs):
        c1, h1 = multiscale_cams(model, [im], [1.0, 0.5])
        torch.testing.assert_close(h_all[j:j + 1], h1, rtol=1e-4, atol=1e-5)


def test_resume_skips_existing_and_protocol_mismatch_refused(model, tmp_path):
    ds = _dataset(tmp_path, [_image(), _image(seed=1)], [[1, 0, 0], [0, 1, 0]])
    out = tmp_path / "cams"
    assert make_cams(model, ds, ["im0"], out, scales=[1.0], progress=False, protocol={"scales": [1.0]},
                     batch_size=1) == ["im0"]
    assert make_cams(model, ds, ["im0", "im1"], out, scales=[1.0], progress=False,
                     protocol={"scales": [1.0]}, batch_size=1) == ["im1"]
    assert make_cams(model, ds, ["im0", "im1"], out, scales=[1.0], progress=False,
                     protocol={"scales": [1.0]}, batch_size=1) == []
    with pytest.raises(DataError, match="another protocol"):
        make_cams(model, ds, ["im0"], out, scales=[0.5], progress=False, protocol={"scales": [0.5]})
    assert make_cams(model, ds, ["im0"], out, scales=[0.5], progress=False, protocol={"scales": [0.5]},
                     restart=True) == ["im0"]


def test_seed_file_round_trip_and_corrupt_file(tmp_path):
    s = Seed(np.array([1, 3]), np.random.rand(2, 3, 4).astype(np.float16), np.random.rand(2, 9, 13).astype(np.float16),
             np.array([1.0, 0.5]), (9, 13))
    save_seed(tmp_path / "a.npz", s)
    t = load_seed(tmp_path / "a.npz")
    np.testing.assert_array_equal(t.keys, s.keys)
    np.testing.assert_array_equal(t.high_res, s.high_res)
    assert t.size == (9, 13) and t.high_res.dtype == np.float16
    (tmp_path / "b.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="corrupt"):
        load_seed(tmp_path / "b.npz")
    with pytest.raises(DataError, match="does not exist"):
        load_seed(tmp_path / "c.npz")
