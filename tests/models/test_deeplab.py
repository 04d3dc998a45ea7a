import numpy as np
import pytest
import torch
from torch import nn

from woodseg.models.backbone import build_resnet
from woodseg.models.deeplab import ASPP, DeepLabV2, build_deeplab, deeplab_optimizer, dilate_stage, msc_loss


def test_aspp_sums_four_dilated_branches_initialised_small() -> None:
    aspp = ASPP(16, 5)
    assert [c.dilation for c in aspp.convs] == [(6, 6), (12, 12), (18, 18), (24, 24)]
    assert all(c.padding == c.dilation for c in aspp.convs)
    w = torch.cat([c.weight.flatten() for c in aspp.convs])
    assert abs(w.std().item() - 0.01) < 0.001 and all((c.bias == 0).all() for c in aspp.convs)
    x = torch.randn(2, 16, 9, 7)
    out = aspp(x)
    assert out.shape == (2, 5, 9, 7)
    torch.testing.assert_close(out, sum(c(x) for c in aspp.convs))


@pytest.mark.parametrize("backbone", ["resnet10", "resnet50"])
def test_output_stride_8_with_dilation_for_basic_and_bottleneck_blocks(backbone: str) -> None:
    net = DeepLabV2(4, backbone)
    convs3 = [m for m in net.backbone[6].modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    convs4 = [m for m in net.backbone[7].modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert convs3 and all(c.dilation == (2, 2) and c.stride == (1, 1) for c in convs3)
    assert convs4 and all(c.dilation == (4, 4) and c.stride == (1, 1) for c in convs4)
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, 4, 8, 8)


def test_dilated_basic_block_sees_wider_context() -> None:
    torch.manual_seed(0)
    dilated = build_resnet("resnet10", None).layer4
    dilate_stage(dilated, 4)
    x = torch.randn(1, 256, 17, 17, requires_grad=True)
    dilated.eval()(x)[0, :, 8, 8].sum().backward()
    reach = x.grad[0].abs().sum(0).nonzero()
    assert reach[:, 0].min() == 0 and reach[:, 0].max() == 16  # 3x3 convs at rate 4, twice: +-8 pixels


def test_msc_shapes_train_and_eval() -> None:
    model = build_deeplab(3, "resnet10").train()
    outs = model(torch.randn(2, 3, 321, 321))
    assert [tuple(o.shape) for o in outs] == [(2, 3, 41, 41), (2, 3, 20, 20), (2, 3, 30, 30), (2, 3, 41, 41)]
    up = [nn.functional.interpolate(o, size=(41, 41), mode="bilinear", align_corners=False) for o in outs[:3]]
    torch.testing.assert_close(outs[3], torch.stack(up).max(0).values)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 65, 49)).shape == (1, 3, 9, 7)


def test_loss_is_summed_over_outputs_and_ignores_255() -> None:
    logits = [torch.randn(1, 3, 4, 4), torch.randn(1, 3, 2, 2)]
    labels = torch.full((1, 8, 8), 255, dtype=torch.long)
    labels[0, :4, :4] = 1
    loss = msc_loss(logits, labels)
    small = nn.functional.cross_entropy(logits[1], torch.tensor([[[1, 255], [255, 255]]]), ignore_index=255)
    big = nn.functional.cross_entropy(logits[0], labels[:, ::2, ::2], ignore_index=255)
    torch.testing.assert_close(loss, big + small)
    assert msc_loss(logits, torch.full((1, 8, 8), 255)).item() == 0.0


def test_param_groups_follow_deeplab_pytorch() -> None:
    model = build_deeplab(3, "resnet10")
    opt = deeplab_optimizer(model, lr=1e-3, momentum=0.9, weight_decay=5e-4)
    (bb, aw, ab) = opt.param_groups
    assert (bb["lr"], aw["lr"], ab["lr"]) == pytest.approx((1e-3, 1e-2, 2e-2))
    assert (bb["weight_decay"], aw["weight_decay"], ab["weight_decay"]) == (5e-4, 5e-4, 0.0)
    assert len(aw["params"]) == len(ab["params"]) == 4
    bn = {id(p) for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    assert not bn & {id(p) for p in bb["params"]}  # frozen BatchNorm is not optimised
    model.train()
    assert all(not m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_overfits_a_handful_of_images(tmp_path) -> None:
    from woodseg.config import TrainConfig
    from woodseg.evaluate.metrics import confusion, scores
    from woodseg.segment.data import to_input
    from woodseg.segment.predict import predict_labels
    from woodseg.segment.train import train_deeplab

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images, labels = [], []
    yy, xx = np.mgrid[:64, :64]
    for _ in range(4):
        lab = np.zeros((64, 64), np.int64)
        y, x = rng.integers(0, 28, 2)
        lab[y:y + 36, x:x + 36] = 1
        cy, cx = rng.integers(16, 48, 2)
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 < 196] = 2
        img = np.choose(lab[..., None], [np.array([40, 60, 90]), np.array([200, 40, 40]), np.array([40, 200, 60])])
        images.append(np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8))
        labels.append(lab)
    batch = {"img": torch.stack([to_input(i) for i in images]), "label": torch.as_tensor(np.stack(labels))}
    # Random init: BatchNorm must learn its statistics, and single-scale keeps the test fast (MSC: see above).
    model = build_deeplab(3, "resnet10", msc_scales=(), freeze_bn=False)
    cfg = TrainConfig(lr=0.01, momentum=0.9, weight_decay=5e-4, checkpoint_every=100)
    train_deeplab(model, iter([batch] * 40), cfg=cfg, max_steps=40, steps_per_epoch=40, out_dir=tmp_path,
                  run_fingerprint="t", progress=False)
    conf = sum(confusion(lab, predict_labels(model, to_input(img), flip=False), 3)
               for img, lab in zip(images, labels, strict=True))
    assert scores(conf).miou > 0.75
    assert (tmp_path / "last.pt").exists()
