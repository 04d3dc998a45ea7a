import numpy as np
import torch

from woodseg.segment.data import MEAN_BGR, to_input, train_sample


def test_to_input_is_bgr_minus_the_caffe_mean() -> None:
    img = np.zeros((2, 3, 3), np.uint8)
    img[..., 0] = 200  # red
    x = to_input(img)
    assert x.shape == (3, 2, 3)
    np.testing.assert_allclose(x[:, 0, 0].numpy(), [0 - MEAN_BGR[0], 0 - MEAN_BGR[1], 200 - MEAN_BGR[2]], rtol=1e-6)


def test_train_sample_pads_with_zero_and_255_and_keeps_pairs_aligned() -> None:
    rng = np.random.default_rng(0)
    img = np.zeros((20, 30, 3), np.uint8)
    img[:, 15:] = 255
    lab = np.zeros((20, 30), np.uint8)
    lab[:, 15:] = 3
    for _ in range(10):
        s = train_sample(img, lab, rng, crop=41)
        x, y = s["img"], s["label"]
        assert x.shape == (3, 41, 41) and y.shape == (41, 41) and y.dtype == torch.int64
        pad = y == 255
        assert pad.any()  # 30 * 1.25 < 41: always some padding
        assert (x[:, pad] == 0).all()
        white = x[2] > 0  # red channel above its mean: the white half
        assert ((y == 3) == white)[~pad].float().mean() > 0.95
        assert set(torch.unique(y).tolist()) <= {0, 3, 255}


def test_train_scales_come_from_the_set_and_sizes_truncate() -> None:
    rng = np.random.default_rng(1)
    lab = np.ones((21, 21), np.uint8)
    sizes = {int((train_sample(np.zeros((21, 21, 3), np.uint8), lab, rng, crop=40)["label"] == 1).sum())
             for _ in range(40)}
    assert sizes == {int(21 * s) ** 2 for s in (0.5, 0.75, 1.0, 1.25, 1.5)}
