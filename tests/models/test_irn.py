import numpy as np
import pytest
import torch

from woodseg.config import TrainConfig
from woodseg.models.irn import IRN, PairGrid, affinity_loss, infer_edge, irn_step, irn_train_sample, train_irn
from woodseg.refine.random_walk import search_directions


def test_pair_sampling_of_a_512_crop() -> None:
    grid = PairGrid(128, 128, radius=10)  # the stride-4 map of a 512 crop
    assert grid.num_directions == 152
    assert grid.src_shape == (119, 110)
    label = torch.zeros(1, 128, 128, dtype=torch.long)
    bg, fg, neg = grid.labels(label, num_labels=21)
    assert bg.shape == (1, 152, 119 * 110) and bg.all() and not fg.any() and not neg.any()


def test_pair_labels_and_affinities_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    h, w, r = 9, 12, 4
    grid = PairGrid(h, w, r)
    label = torch.as_tensor(rng.choice([0, 3, 255], size=(1, h, w)))
    edge = torch.as_tensor(rng.uniform(0, 1, (1, 1, h, w)), dtype=torch.float32)
    bg, fg, neg = grid.labels(label, num_labels=21)
    aff = grid.affinities(edge)
    sh, sw = grid.src_shape
    from woodseg.refine.random_walk import direction_paths
    for d, ((dy, dx), path) in enumerate(zip(search_directions(r), direction_paths(r), strict=True)):
        for s in range(sh * sw):
            y, x = divmod(s, sw)
            x += r - 1
            a, b = int(label[0, y, x]), int(label[0, y + dy, x + dx])
            ok = a != 255 and b != 255
            assert bg[0, d, s] == (ok and a == b == 0)
            assert fg[0, d, s] == (ok and a == b and a > 0)
            assert neg[0, d, s] == (ok and a != b)
            expect = 1 - max(float(edge[0, 0, y + py, x + px]) for py, px in path)
            assert abs(float(aff[0, d, s]) - expect) < 1e-6


def test_loss_terms() -> None:
    aff = torch.tensor([[[0.9, 0.1, 0.5]]])
    one = torch.tensor([[[1.0, 0.0, 0.0]]])
    two = torch.tensor([[[0.0, 1.0, 0.0]]])
    terms = affinity_loss(aff, one, torch.zeros_like(one), two)
    assert terms["pos_aff"].item() == pytest.approx(-np.log(0.9 + 1e-5) / 4, rel=1e-4)
    assert terms["neg_aff"].item() == pytest.approx(-np.log(1 + 1e-5 - 0.1) / 2, rel=1e-4)


def test_backbone_frozen_and_shapes() -> None:
    torch.manual_seed(0)
    model = IRN("resnet10").train()
    assert not model.backbone.training and model.edge_heads.training
    assert all(not p.requires_grad for p in model.backbone.parameters())
    out = model(torch.randn(2, 3, 64, 48))
    assert out.shape == (2, 1, 16, 12)
    edge = infer_edge(model, torch.randn(3, 37, 50), pad_to=64)
    assert edge.shape == (10, 13) and ((edge > 0) & (edge < 1)).all()


def test_edge_of_a_symmetric_image_is_symmetric() -> None:
    torch.manual_seed(0)
    model = IRN("resnet10")
    img = torch.randn(3, 32, 16)
    img = torch.cat([img, img.flip(-1)], -1)  # 32 x 32, mirror-symmetric, width a multiple of 4
    edge = infer_edge(model, img, pad_to=32)
    np.testing.assert_allclose(edge, edge[:, ::-1], atol=1e-6)


def test_training_lowers_the_loss_and_resumes(tmp_path) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    image = np.zeros((64, 64, 3), np.uint8)
    image[:, 32:] = (220, 40, 40)
    label = np.zeros((64, 64), np.uint8)
    label[:, 32:] = 5
    label[:, 28:36] = 255
    batch = [irn_train_sample(image, label, rng, crop=64, scale_range=(1.0, 1.0)) for _ in range(2)]
    batch = {k: torch.stack([b[k] for b in batch]) for k in batch[0]}
    assert batch["img"].shape == (2, 3, 64, 64) and batch["label"].shape == (2, 16, 16)
    model = IRN("resnet10")
    first = sum(v.item() for v in irn_step(model, batch, num_labels=21, radius=5).values())
    cfg = TrainConfig(lr=0.1, checkpoint_every=10, log_every=1)
    train_irn(model, iter([batch] * 30), num_labels=21, cfg=cfg, max_steps=30, steps_per_epoch=30,
              out_dir=tmp_path, run_fingerprint="t", radius=5, progress=False)
    last = sum(v.item() for v in irn_step(model, batch, num_labels=21, radius=5).values())
    assert last < 0.7 * first
    assert (tmp_path / "last.pt").exists() and (tmp_path / "metrics.jsonl").exists()
    # a finished run is not trained again: the checkpoint is loaded, no step is taken
    fresh = IRN("resnet10")
    train_irn(fresh, iter([]), num_labels=21, cfg=cfg, max_steps=30, steps_per_epoch=30,
              out_dir=tmp_path, run_fingerprint="t", radius=5, progress=False)
    for a, b in zip(fresh.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
