"""DeepLab training helpers: channels_last steps, the engine's loss scaler and its checkpointed state."""

import torch

from woodseg.config import TrainConfig
from woodseg.models.checkpoint import load_checkpoint
from woodseg.segment.train import deeplab_step
from woodseg.train.engine import Engine


def test_deeplab_step_takes_channels_last_inputs() -> None:
    from woodseg.models.deeplab import build_deeplab

    model = build_deeplab(3, "resnet10", msc_scales=(), freeze_bn=False).to(memory_format=torch.channels_last)
    batch = {"img": torch.randn(2, 3, 33, 33), "label": torch.randint(0, 3, (2, 33, 33))}
    terms = deeplab_step(model.train(), batch, channels_last=True)
    assert terms["ce"].dtype == torch.float32 and terms["ce"].item() > 0


def _fit(out, scaler):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD([{"params": model.parameters(), "initial_lr": 0.1}], lr=0.1)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)
    engine = Engine(model, model, opt, max_steps=20, steps_per_epoch=20, out_dir=out,
                    cfg=TrainConfig(checkpoint_every=100, momentum=0.0), run_fingerprint="s",
                    make_checkpoint=lambda: {"model": model.state_dict()}, progress=False, scaler=scaler)
    engine.run(iter([{"x": x}] * 20), lambda b: {"mse": ((model(b["x"]) - y) ** 2).mean()}, 0)
    return model


def test_engine_with_a_loss_scaler_trains_and_checkpoints_its_state(tmp_path) -> None:
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    scaled = _fit(tmp_path / "a", scaler)
    plain = _fit(tmp_path / "b", None)
    for a, b in zip(scaled.parameters(), plain.parameters(), strict=True):  # gradients unscaled before the step
        torch.testing.assert_close(a, b)
    state = load_checkpoint(tmp_path / "a" / "last.pt")
    assert state["scaler"]["scale"] == scaler.get_scale()
    assert "scaler" not in load_checkpoint(tmp_path / "b" / "last.pt")
    fresh = torch.amp.GradScaler("cpu", init_scale=1.0)
    opt = torch.optim.SGD(scaled.parameters(), lr=0.1)
    Engine(scaled, scaled, opt, max_steps=20, steps_per_epoch=20, out_dir=tmp_path / "a",
           cfg=TrainConfig(checkpoint_every=100), run_fingerprint="s", make_checkpoint=dict, progress=False,
           scaler=fresh).resume()
    assert fresh.get_scale() == scaler.get_scale()
