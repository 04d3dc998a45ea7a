"""AdvCAM seeds: the Grad-CAM identity of reference-spec 4.4, T = 1 equals CAM, the anti-adversarial step
(raises the class score, stays in the input's range, leaves the model alone), the restriction term and
mask, and the ``cam`` stage with ``cam.method=advcam`` (format, protocol, resume)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import random_checkpoint, tiny_overrides
from woodseg.config import ModelConfig, load_config
from woodseg.data.build import load_dataset
from woodseg.errors import ConfigError, DataError
from woodseg.models.cam_net import build_cam_net
from woodseg.seeds.advcam import (
    ACC_WEIGHT,
    AdvParams,
    advcam_multiscale,
    advcam_scale_map,
    anti_adversarial,
    gradcam_maps,
    gradcam_weights,
    pair_tensor,
)
from woodseg.seeds.cam import multiscale_cams, multiscale_maps, normalise_keys
from woodseg.seeds.stage import cam_stage
from woodseg.seeds.store import load_seed, read_index


def _image(h=40, w=44, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def model():
    """resnet10 at output stride 8 whose class maps are about half positive on :func:`_image` (mixed signs,
    as a trained classifier's): random classifier rows with the mean-feature direction projected out."""
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet10", weights=None, strides=(2, 2, 1, 1), freeze_bn=True, frozen_stages=0,
                      channels_last=False)
    net = build_cam_net(cfg, 3).eval()
    with torch.no_grad():
        fbar = net.feature_map(pair_tensor(net, _image(), 1.0)).mean(dim=(0, 2, 3))
        w = torch.randn(3, fbar.numel())
        w -= (w @ fbar)[:, None] * fbar / fbar.dot(fbar)
        net.classifier.weight.copy_(w[:, :, None, None])
    return net


def test_gradcam_identity_of_reference_spec_4_4(model):
    """GSP target + sum-of-gradients / global positive count: w_bk = W_ck n_b / (P_c (n_0 + n_1)), hence
    R_b = ReLU(A0_bc) n_b / (P_c (n_0 + n_1))."""
    x = pair_tensor(model, _image(), 1.0)
    wc_all = model.classifier.weight[:, :, 0, 0].detach()
    for c in range(3):
        feats = model.feature_map(x)
        a0 = model.classifier(feats)
        (grad,) = torch.autograd.grad(torch.relu(a0).sum(dim=(2, 3))[:, c].sum(), feats)
        n = (a0[:, c] > 0).flatten(1).sum(1).double()
        assert n.min() > 0 and n[0] != n[1]  # the per-image factor is really tested
        p_c = (wc_all[c] > 0).sum().double()
        scale = n / (p_c * n.sum())
        expected_w = wc_all[c][None].double() * scale[:, None]
        torch.testing.assert_close(gradcam_weights(grad).double(), expected_w, rtol=1e-5, atol=1e-9)

        r, a0_again = gradcam_maps(model, x, c)
        assert r.requires_grad  # the map keeps its graph to the input
        expected_r = torch.relu(a0_again[:, c]).detach().double() * scale[:, None, None]
        torch.testing.assert_close(r.detach().double(), expected_r, rtol=1e-4, atol=1e-7)


def test_one_iteration_is_the_clean_cam(model):
    """T = 1 maps only x^0: the Grad-CAM of the clean pair, i.e. CAM / (2 P_c) per image when the image
    equals its flip (n_0 = n_1); hence the normalised seed is the CAM seed."""
    half = _image(40, 22, seed=5)
    sym = np.concatenate([half, half[:, ::-1]], axis=1)  # mirror-symmetric: x^0 = [img, img]
    keys = [0, 1, 2]
    scales = [1.0, 2.0]
    c4, high = advcam_multiscale(model, sym, keys, scales, AdvParams(iters=1))
    p4, phigh = multiscale_cams(model, [sym], scales)
    p_c = (model.classifier.weight[:, :, 0, 0] > 0).sum(1).float()
    # ACC_WEIGHT * CAM / (2 P_c): un-normalised, exactly proportional
    factor = (ACC_WEIGHT / (2 * p_c))[:, None, None]
    torch.testing.assert_close(high, phigh[0] * factor, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(c4, p4[0] * factor, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(normalise_keys(high, np.arange(3)), normalise_keys(phigh[0], np.arange(3)), atol=5e-3)

    # a general image: n_0 != n_1 weights the two flips slightly differently; still close to the CAM seed
    img = _image()
    c4, high = advcam_multiscale(model, img, keys, scales, AdvParams(iters=1))
    p4, phigh = multiscale_cams(model, [img], scales)
    np.testing.assert_allclose(normalise_keys(high, np.arange(3)), normalise_keys(phigh[0], np.arange(3)), atol=0.15)
    # and more iterations move away from it
    c4_t, high_t = advcam_multiscale(model, img, keys, scales, AdvParams(iters=4))
    assert np.abs(normalise_keys(high_t, np.arange(3)) - normalise_keys(high, np.arange(3))).max() > 0.05


def test_half_scale_iterations_zero_iterations_and_imageless_classes(model):
    p = AdvParams(iters=27)
    assert p.iters_at(0.5) == 13 and p.iters_at(1.0) == 27 and p.iters_at(2.0) == 27
    with pytest.raises(ConfigError, match="adv_iters"):
        advcam_scale_map(model, AdvParams(iters=0))
    c4, high = multiscale_maps(model, [_image(), _image(seed=1)], [np.array([], np.int64), np.array([2])],
                               [1.0, 0.5], advcam_scale_map(model, AdvParams(iters=1)))
    assert c4.shape == (2, 3, 10, 11) and high.shape == (2, 3, 40, 44)
    assert high[0].abs().max() == 0 and high[1, :2].abs().max() == 0 and high[1, 2].max() > 0


def _l_cls(model, x, c):
    s_avg = torch.relu(model.cam_raw(x)).mean(dim=(2, 3))
    return s_avg[:, c].sum() - s_avg[:, [k for k in range(s_avg.shape[1]) if k != c]].sum()


def test_anti_adversarial_step_raises_score_stays_in_range_and_leaves_model_alone(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x0 = pair_tensor(model, _image(seed=2), 1.0)
    c = 1
    params = AdvParams(iters=6)
    with torch.no_grad():  # the loop must turn gradients on itself
        tr = anti_adversarial(model, x0, c, params.iters, params)

    # the step of reference-spec 4.2 (9): at t = 0 L_AD has zero gradient, g = dL_cls/dx (all other classes)
    x = x0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_l_cls(model, x, c), x)
    x1 = torch.clamp(x0 + params.step * g / g.abs().max(), x0.min(), x0.max())
    tr1 = anti_adversarial(model, x0, c, 1, params)
    torch.testing.assert_close(tr1.x, x1, rtol=1e-5, atol=1e-6)
    assert (tr1.x - x0).abs().max() == pytest.approx(params.step, rel=1e-4)

    # the class score and L_cls rise; x^T stays within the clean range and has moved
    assert tr.l_cls[-1] > tr.l_cls[1] > tr.l_cls[0]
    assert tr.score[-1] > tr.score[0]
    with torch.no_grad():
        assert float(_l_cls(model, tr.x, c)) > tr.l_cls[-1]  # x^T (never mapped) is further still
    assert tr.x.min() >= x0.min() and tr.x.max() <= x0.max()
    assert (tr.x - x0).abs().max() > params.step
    assert tr.l_ad[0] == 0 and tr.l_ad[-1] > 0

    after = model.state_dict()
    for k, v in before.items():
        torch.testing.assert_close(after[k], v, rtol=0, atol=0, msg=k)
    assert all(p.grad is None for p in model.parameters())
    assert not model.training


def test_restriction_term_and_mask_are_used(model):
    x0 = pair_tensor(model, _image(seed=3), 1.0)
    runs = {(coeff, th): anti_adversarial(model, x0, 0, 4, AdvParams(iters=4, coeff=coeff, score_th=th))
            for coeff, th in [(0.0, 0.5), (7.0, 0.5), (7.0, 0.9)]}
    free, reg, narrow = runs[(0.0, 0.5)], runs[(7.0, 0.5)], runs[(7.0, 0.9)]
    # x^1 does not depend on L_AD (zero gradient at R = R^0): the maps at t = 0, 1 agree ...
    assert free.l_cls[:2] == pytest.approx(reg.l_cls[:2], rel=1e-6)
    # ... from t = 2 on the regulariser and its mask change the trajectory and the accumulated map
    assert abs(free.l_cls[3] - reg.l_cls[3]) > 1e-4 and abs(narrow.l_cls[3] - reg.l_cls[3]) > 1e-4
    assert (free.acc - reg.acc).abs().max() > 1e-3 * reg.acc.max()
    assert (narrow.acc - reg.acc).abs().max() > 1e-3 * reg.acc.max()


def test_cam_stage_advcam_format_protocol_and_resume(tiny_voc, tmp_path):
    out = tmp_path / "run"
    random_checkpoint(out)
    over = {"cam.method": "advcam", "cam.adv_iters": 2, "cam.splits": "[val]", "cam.scales": "[1.0,0.5]"}
    cfg = load_config(None, tiny_overrides(tiny_voc, out, **over))
    folder = cam_stage(cfg, progress=False)
    ds = load_dataset(cfg.data)
    ids = ds.check_split("val")
    index = read_index(folder)
    assert index["method"] == "advcam"
    assert (index["adv_iters"], index["adv_step"], index["adv_coeff"], index["adv_score_th"]) == (2, 0.08, 7.0, 0.5)
    for i in ids:
        seed = load_seed(folder / f"{i}.npz")
        np.testing.assert_array_equal(seed.keys, np.flatnonzero(ds.label(i) > 0.5))
        assert seed.cam.shape == (len(seed.keys), 12, 12) and seed.high_res.shape == (len(seed.keys), 48, 48)
        for m in (seed.cam, seed.high_res):
            assert m.min() >= 0 and m.max() <= 1
            assert np.all(m.reshape(len(seed.keys), -1).max(1) > 0.99)
        np.testing.assert_allclose(seed.scales, [1.0, 0.5])

    # resume: done images are skipped, a missing one is remade
    mtimes = {i: (folder / f"{i}.npz").stat().st_mtime_ns for i in ids}
    (folder / f"{ids[0]}.npz").unlink()
    cam_stage(cfg, progress=False)
    assert (folder / f"{ids[0]}.npz").exists()
    assert all((folder / f"{i}.npz").stat().st_mtime_ns == mtimes[i] for i in ids[1:])

    # another method or other adv parameters in the same folder are refused, unless restart
    for other in ({**over, "cam.method": "cam"}, {**over, "cam.adv_coeff": 3.0}):
        with pytest.raises(DataError, match="another protocol"):
            cam_stage(load_config(None, tiny_overrides(tiny_voc, out, **other)), progress=False)
    cam_stage(load_config(None, tiny_overrides(tiny_voc, out, **{**over, "cam.method": "cam"})), restart=True,
              progress=False)
    index = json.loads((folder / "index.json").read_text())
    assert index["method"] == "cam" and "adv_iters" not in index
    assert all((folder / f"{i}.npz").exists() for i in ids)


def _official_style(model, x0, c, iters, p):
    """reference-spec 4.2 written the way the official code works: hooks on stage 4, ``.backward()``
    into a copy of the model, image gradients cleared between the two backward passes."""
    import copy

    net = copy.deepcopy(model)
    store = {}
    stage4 = net.stages[-1]
    stage4.register_forward_hook(lambda m, i, o: store.__setitem__("f", o))
    stage4.register_full_backward_hook(lambda m, gi, go: store.__setitem__("g", go[0]))
    x = x0.clone()
    acc, r0 = 0, None
    for t in range(iters):
        x = x.detach().requires_grad_(True)
        a0 = net.cam_raw(x)
        torch.relu(a0).sum(dim=(2, 3))[:, c].sum().backward(retain_graph=True)
        g = store["g"]
        w = (g.sum(dim=(2, 3)) / ((g > 0).sum() + 1e-12)).detach()
        r = torch.relu((w[:, :, None, None] * store["f"]).sum(1))
        r = r[0] + r[1].flip(-1)
        if t == 0:
            r0 = r.detach().clone()
        acc = acc + 2 * r.detach()
        s_avg = torch.relu(a0).mean(dim=(2, 3))
        others = torch.ones(s_avg.shape[1], dtype=torch.bool)
        others[c] = False
        l_cls = s_avg[:, c].sum() - s_avg[:, others].sum()
        mask = (r.detach() / r.detach().max()) > p.score_th
        l_ad = (torch.abs(r - r0) * mask).sum()
        x.grad = None
        (l_cls - p.coeff * l_ad).backward()
        with torch.no_grad():
            x = torch.clamp(x + p.step * x.grad / (x.grad.abs().max() + 1e-12), x.min(), x.max())
    return acc, x.detach()


def test_matches_an_official_style_implementation(model):
    x0 = pair_tensor(model, _image(seed=4), 1.0)
    p = AdvParams(iters=5)
    for c in (0, 2):
        acc, x = _official_style(model, x0, c, p.iters, p)
        tr = anti_adversarial(model, x0, c, p.iters, p)
        torch.testing.assert_close(tr.acc, acc, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(tr.x, x, rtol=1e-4, atol=1e-5)
