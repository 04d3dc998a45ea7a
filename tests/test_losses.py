"""The W-OoD losses against hand-computed values, gradients, and an independent re-derivation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from woodseg.config import TABLE5_ROWS, ModelConfig, WoodConfig
from woodseg.models.cam_net import build_cam_net
from woodseg.wood import losses
from woodseg.wood.objective import wood_objective


def _toy():
    z = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    class_centres = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    ood_centres = torch.tensor([[0.0, 1.0], [6.0, 8.0], [0.0, -2.0]])
    return z, labels, class_centres, ood_centres


def test_distance_loss_hand_computed():
    z, y, cc, oc = _toy()
    # tau=0.5 of K=3 -> the 2 nearest OoD centres per image.
    # image 0: pull d(z,c0)=0; push: distances 1, 10, 2 -> 1 + 2 = 3      -> L0 = -3
    # image 1: pull 5 + 4 = 9; push: sqrt(18), 5, sqrt(45) -> sqrt(18) + 5 -> L1 = 9 - 5 - sqrt(18)
    expected = (-3.0 + (9.0 - 5.0 - math.sqrt(18.0))) / 2
    got = losses.distance_loss(z, y, cc, oc, tau=0.5)
    assert got.item() == pytest.approx(expected, abs=1e-5)
    assert losses.distance_loss(z, y, cc, oc, tau=0.5, use_push=False).item() == pytest.approx(4.5, abs=1e-5)
    assert losses.distance_loss(z, y, cc, oc, tau=0.5, use_pull=False).item() == pytest.approx(
        -(3.0 + 5.0 + math.sqrt(18.0)) / 2, abs=1e-5)


def test_num_nearest_is_top_tau_percent():
    assert losses.num_nearest(0.2, 50) == 10
    assert losses.num_nearest(0.2, 20) == 4
    assert losses.num_nearest(0.2, 70) == 14
    assert losses.num_nearest(0.2, 3) == 1  # at least one
    assert losses.num_nearest(1.0, 7) == 7


def test_invalid_class_centre_is_not_pulled():
    z, y, cc, oc = _toy()
    valid = torch.tensor([True, False])
    got = losses.distance_loss(z, y, cc, oc, tau=0.5, class_valid=valid, use_push=False)
    assert got.item() == pytest.approx((0.0 + 5.0) / 2, abs=1e-5)


def test_distance_loss_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 5, dtype=torch.float64, generator=g, requires_grad=True)
    y = (torch.rand(4, 3, generator=g) > 0.5).double()
    cc = torch.randn(3, 5, dtype=torch.float64, generator=g)
    oc = torch.randn(6, 5, dtype=torch.float64, generator=g)
    assert torch.autograd.gradcheck(lambda t: losses.distance_loss(t, y, cc, oc, tau=0.34), (z,))
    assert torch.autograd.gradcheck(lambda t: losses.official_distance_loss(t, y, cc, oc, tau=0.34), (z,))


def test_distance_gradient_direction_pulls_and_pushes():
    z = torch.tensor([[1.0, 0.0]], requires_grad=True)
    cc = torch.tensor([[0.0, 0.0]])
    oc = torch.tensor([[2.0, 0.0]])
    losses.distance_loss(z, torch.ones(1, 1), cc, oc, tau=1.0).backward()
    # pull towards (0,0) and push away from (2,0) both say: decrease x
    assert z.grad[0, 0] > 0 and abs(z.grad[0, 1]) < 1e-6


def test_zero_distance_has_finite_gradient():
    z = torch.zeros(1, 3, requires_grad=True)
    losses.distance_loss(z, torch.ones(1, 1), torch.zeros(1, 3), torch.zeros(2, 3), tau=0.5).backward()
    assert torch.isfinite(z.grad).all()


def _official_reference(z, y, cc, oc, tau):
    """Independent re-derivation of reference-spec 3.4 with numpy loops and a full sort."""
    z, y, cc, oc = (np.asarray(t, dtype=np.float64) for t in (z, y, cc, oc))
    b, k = z.shape[0], oc.shape[0]
    pull = sum(np.linalg.norm(z[i] - cc[c]) for i in range(b) for c in range(cc.shape[0]) if y[i, c] > 0.5)
    o = np.array([[np.linalg.norm(z[i] - oc[j]) for j in range(k)] for i in range(b)])
    vals = np.sort(o[o != 0])[::-1]  # descending
    k_keep = int(vals.size * (1 - tau))
    t = vals[k_keep - 1]  # the k_keep-th largest
    push = o[o < t].sum()  # strict '<'
    return (pull - push) / (b * k)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_official_distance_loss_matches_reference(seed):
    g = torch.Generator().manual_seed(seed)
    b, c, k, d = 16, 20, 50, 8
    z = torch.randn(b, d, generator=g)
    y = (torch.rand(b, c, generator=g) > 0.8).float()
    cc, oc = torch.randn(c, d, generator=g), torch.randn(k, d, generator=g)
    got = losses.official_distance_loss(z, y, cc, oc, tau=0.2).item()
    assert got == pytest.approx(_official_reference(z, y, cc, oc, 0.2), rel=1e-5)
    # the code's own way of writing it: (20/K) * mean_{B x 20}(F) - mean_{B x K}(O * S)
    d_in = losses.pairwise_distance(z, cc)
    o = losses.pairwise_distance(z, oc)
    t = torch.sort(o.flatten(), descending=True).values[int(o.numel() * 0.8) - 1]
    code_form = (20 / k) * (y * d_in).mean() - (o * (o < t)).mean()
    assert got == pytest.approx(code_form.item(), rel=1e-5)


def test_official_selection_is_pooled_over_the_batch():
    # image 0 sits near every OoD centre, image 1 far from all: pooled top-tau picks only image 0's entries.
    oc = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [0.1, 0.1], [0.05, 0.05]])
    z = torch.tensor([[0.0, 0.01], [10.0, 10.0]], requires_grad=True)
    y = torch.zeros(2, 1)
    losses.official_distance_loss(z, y, torch.zeros(1, 2), oc, tau=0.5).backward()
    assert z.grad[1].abs().sum() == 0  # image 1 got no selected centre
    assert z.grad[0].abs().sum() > 0
    # the paper's per-image selection pushes both images
    z.grad = None
    losses.distance_loss(z, y, torch.zeros(1, 2), oc, tau=0.5).backward()
    assert z.grad[1].abs().sum() > 0


def test_bce_terms():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    y = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    manual = -(y * torch.log(torch.sigmoid(logits)) + (1 - y) * torch.log(1 - torch.sigmoid(logits))).mean()
    assert losses.bce_in(logits, y).item() == pytest.approx(manual.item(), rel=1e-6)
    assert losses.bce_to_zero(logits).item() == pytest.approx(
        -torch.log(1 - torch.sigmoid(logits)).mean().item(), rel=1e-6)
    u = losses.uniform_label_loss(logits).item()
    p = torch.sigmoid(logits)
    assert u == pytest.approx(-(0.5 * torch.log(p) + 0.5 * torch.log(1 - p)).mean().item(), rel=1e-6)


def test_official_ood_loss_excludes_class_and_divides_by_in_batch():
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    per = torch.nn.functional.softplus(logits).mean(1)
    assert losses.official_ood_loss(logits, None, 16).item() == pytest.approx(per.sum().item() / 16)
    assert losses.official_ood_loss(logits, 1, 16).item() == pytest.approx(per[0].item() / 16)


def _tiny_model(num_outputs=3):
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet10", weights=None, freeze_bn=True, frozen_stages=0, channels_last=False)
    return build_cam_net(cfg, num_outputs).eval()


def test_anti_adversarial_step_raises_top_logit_within_bounds():
    model = _tiny_model()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    before = model(x)[0].max(1).values
    x_adv = losses.anti_adversarial_step(model, x, step=0.07)
    after = model(x_adv)[0].max(1).values
    assert after.sum() > before.sum()
    assert x_adv.min() >= x.min() - 1e-6 and x_adv.max() <= x.max() + 1e-6
    assert (x_adv - x).abs().max() <= 0.07 + 1e-6
    assert all(p.grad is None for p in model.parameters())


def _batch():
    g = torch.Generator().manual_seed(3)
    x_in = torch.randn(4, 3, 32, 32, generator=g)
    y_in = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    x_ood = torch.randn(4, 3, 32, 32, generator=g)
    cc = torch.randn(3, 512, generator=g)
    oc = torch.randn(5, 512, generator=g)
    return x_in, y_in, x_ood, (cc, torch.ones(3, dtype=torch.bool), oc)


@pytest.mark.parametrize("row", list("abcdef"))
def test_table5_switches_change_exactly_what_they_name(row):
    model = _tiny_model()
    x_in, y_in, x_ood, centres = _batch()
    cfg = WoodConfig(variant="paper", tau=0.4, **TABLE5_ROWS[row])
    terms = wood_objective(model, cfg, x_in, y_in, x_ood, centres)
    s = TABLE5_ROWS[row]
    expected_keys = {"cls_in"} | ({"cls_ood"} if s["use_cls_ood"] else set()) | (
        {"dist"} if (s["use_d_in"] or s["use_d_ood"]) else set())
    assert set(terms) == expected_keys
    logits_in, z = model(x_in)
    assert terms["cls_in"].item() == pytest.approx(losses.bce_in(logits_in, y_in).item(), rel=1e-5)
    if "cls_ood" in terms:
        assert terms["cls_ood"].item() == pytest.approx(losses.bce_to_zero(model(x_ood)[0]).item(), rel=1e-5)
    if "dist" in terms:
        cc, valid, oc = centres
        pull = losses.pull_term(z, y_in, cc, valid).mean() if s["use_d_in"] else 0.0
        push = losses.push_term(z, oc, 0.4).mean() if s["use_d_ood"] else 0.0
        k = centres[2].shape[0]  # normalize_by_k: the published lambda's scale
        assert terms["dist"].item() == pytest.approx(0.007 * float(torch.as_tensor(pull - push).detach()) / k,
                                                     rel=1e-4)
        literal = wood_objective(model, cfg.model_copy(update={"normalize_by_k": False}), x_in, y_in, x_ood, centres)
        assert literal["dist"].item() == pytest.approx(k * terms["dist"].item(), rel=1e-4)


def test_baseline_has_only_in_distribution_bce():
    model = _tiny_model()
    x_in, y_in, x_ood, centres = _batch()
    terms = wood_objective(model, WoodConfig(variant="none"), x_in, y_in, x_ood, centres)
    assert set(terms) == {"cls_in"}


def test_naive_background_class_and_uniform_label():
    model = _tiny_model(num_outputs=4)
    x_in, y_in, x_ood, _ = _batch()
    terms = wood_objective(model, WoodConfig(variant="background_class"), x_in, y_in, x_ood, None)
    lg_in, lg_ood = model(x_in)[0], model(x_ood)[0]
    t_in = torch.cat([y_in, torch.zeros(4, 1)], 1)
    t_ood = torch.zeros(4, 4)
    t_ood[:, 3] = 1
    assert terms["cls_in"].item() == pytest.approx(losses.bce_in(lg_in, t_in).item(), rel=1e-5)
    assert terms["cls_ood"].item() == pytest.approx(losses.bce_in(lg_ood, t_ood).item(), rel=1e-5)
    model3 = _tiny_model()
    terms = wood_objective(model3, WoodConfig(variant="uniform_label"), x_in, y_in, x_ood, None)
    assert set(terms) == {"cls_in", "cls_ood"}
    assert terms["cls_ood"].item() == pytest.approx(losses.uniform_label_loss(model3(x_ood)[0]).item(), rel=1e-5)


def test_official_variant_terms():
    model = _tiny_model()
    x_in, y_in, x_ood, centres = _batch()
    cfg = WoodConfig(variant="official", tau=0.2, ood_coeff=0.25, adv_step=0.07)
    terms = wood_objective(model, cfg, x_in, y_in, x_ood, centres, exclude_index=None)
    assert set(terms) == {"cls_in", "cls_ood", "dist"}
    x_adv = losses.anti_adversarial_step(model, x_ood, 0.07)
    expected_ood = 0.25 * losses.official_ood_loss(model(x_adv)[0], None, 4)
    assert terms["cls_ood"].item() == pytest.approx(expected_ood.item(), rel=1e-5)
    cc, _, oc = centres
    expected_d = 0.007 * losses.official_distance_loss(model(x_in)[1], y_in, cc, oc, 0.2)
    assert terms["dist"].item() == pytest.approx(expected_d.item(), rel=1e-5)
