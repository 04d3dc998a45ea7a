import numpy as np
import pytest
import torch
from torch import nn

from woodseg.segment.predict import predict_labels, predict_probs


class LeftRight(nn.Module):
    """Logits that say class 1 on the left half of the input, class 0 on the right (at stride 2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        left = (torch.arange(w // 2) < w // 4).float().expand(b, 1, h // 2, w // 2)
        return torch.cat([1 - left, left], 1) * 4


def test_flip_averaging_and_fusion() -> None:
    x = torch.zeros(3, 8, 16)
    plain = predict_probs(LeftRight(), x, flip=False)
    assert plain.shape == (2, 8, 16)
    assert plain.argmax(0)[:, :6].eq(1).all() and plain.argmax(0)[:, 10:].eq(0).all()
    both = predict_probs(LeftRight(), x, flip=True)
    torch.testing.assert_close(both[1], torch.full((8, 16), 0.5))  # the mirror says the opposite
    multi = predict_probs(LeftRight(), x, scales=(1.0, 0.5), flip=False, fuse="max")
    assert multi.shape == (2, 8, 16)
    with pytest.raises(ValueError, match="fuse"):
        predict_probs(LeftRight(), x, fuse="median")


def test_crf_post_processing_runs_on_the_image() -> None:
    pytest.importorskip("pydensecrf.densecrf")
    from woodseg.refine.crf import SOFTMAX_CRF

    image = np.zeros((8, 16, 3), np.uint8)
    image[:, :8] = 250
    labels = predict_labels(LeftRight(), torch.zeros(3, 8, 16), image, flip=False, crf=SOFTMAX_CRF)
    assert labels.dtype == np.uint8 and labels.shape == (8, 16)
    assert (labels[:, :8] == 1).all() and (labels[:, 8:] == 0).all()
    with pytest.raises(ValueError, match="RGB image"):
        predict_labels(LeftRight(), torch.zeros(3, 8, 16), None, crf=SOFTMAX_CRF)
