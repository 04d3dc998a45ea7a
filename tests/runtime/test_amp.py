"""runtime.amp: autocast only on CUDA (bf16 where the GPU has it, else fp16 with a GradScaler), never on a CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from woodseg.config import TrainConfig, load_config
from woodseg.runtime import amp
from woodseg.runtime.amp import amp_dtype, autocast, grad_scaler, set_amp_mode
from woodseg.train import engine as engine_mod
from woodseg.train.engine import Engine


@pytest.fixture(autouse=True)
def _reset_mode():
    yield
    set_amp_mode("auto")


def test_policy_picks_dtype_for_a_faked_gpu():
    assert amp_dtype("cuda", "auto", bf16_supported=lambda: True) is torch.bfloat16
    assert amp_dtype("cuda:1", "auto", bf16_supported=lambda: False) is torch.float16
    assert amp_dtype(torch.device("cuda", 0), "off", bf16_supported=lambda: True) is None


def test_never_on_a_cpu_and_the_process_default_follows_runtime_amp():
    for mode in ("auto", "off"):
        assert amp_dtype("cpu", mode, bf16_supported=lambda: True) is None
    assert amp.amp_mode() == "auto"
    set_amp_mode("off")
    assert amp_dtype("cuda", bf16_supported=lambda: True) is None
    with pytest.raises(ValueError, match="auto' or 'off"):
        set_amp_mode("bf16")  # type: ignore[arg-type]
    assert load_config(None, ["runtime.amp=off"]).runtime.amp == "off"
    assert load_config(None, []).runtime.amp == "auto"


def test_scaler_only_for_float16():
    assert grad_scaler("cuda", torch.bfloat16) is None
    assert grad_scaler("cpu", None) is None
    assert isinstance(grad_scaler("cpu", torch.float16), torch.amp.GradScaler)


def test_cpu_forward_is_plain_float32():
    net = nn.Conv2d(3, 4, 3)
    x = torch.randn(2, 3, 8, 8)
    ref = net(x)
    with autocast("cpu", amp_dtype("cpu", "auto", bf16_supported=lambda: True)):
        assert not torch.is_autocast_enabled("cpu")
        out = net(x)
    assert out.dtype == torch.float32
    assert torch.equal(out, ref)


def _train(tmp_path, name: str, steps: int = 3) -> tuple[nn.Module, list[bool], Engine]:
    torch.manual_seed(0)
    net = nn.Linear(5, 2)
    opt = torch.optim.SGD([{"params": list(net.parameters()), "lr": 0.1, "initial_lr": 0.1}], lr=0.1)
    cfg = TrainConfig(epochs=1, batch_size=4, lr=0.1, poly_power=0.0, checkpoint_every=100)
    eng = Engine(net, net, opt, max_steps=steps, steps_per_epoch=steps, out_dir=tmp_path / name, cfg=cfg,
                 run_fingerprint="x", make_checkpoint=lambda: {"model": net.state_dict()}, progress=False)
    seen = []
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(4, 5, generator=g), torch.randn(4, 2, generator=g)) for _ in range(steps)]

    def step(batch):
        seen.append(torch.is_autocast_enabled("cpu"))
        x, y = batch
        return {"mse": ((net(x) - y) ** 2).mean()}

    eng.run(iter(batches), step, 0)
    return net, seen, eng


def test_engine_on_a_cpu_takes_the_unchanged_float32_path(tmp_path):
    net, seen, eng = _train(tmp_path, "a")
    assert eng.amp_dtype is None and eng.scaler is None and seen == [False] * 3
    # the same steps by hand
    torch.manual_seed(0)
    ref = nn.Linear(5, 2)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x, y = torch.randn(4, 5, generator=g), torch.randn(4, 2, generator=g)
        opt.zero_grad()
        ((ref(x) - y) ** 2).mean().backward()
        opt.step()
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)


def test_engine_float16_path_steps_through_the_scaler(tmp_path, monkeypatch):
    """Forced fp16 policy (as on a GPU without bf16): the GradScaler unscales exactly (powers of two)."""
    ref, _, _ = _train(tmp_path, "ref")
    monkeypatch.setattr(engine_mod, "amp_dtype", lambda device, mode=None: torch.float16)
    monkeypatch.setattr(engine_mod, "autocast", lambda device, dtype: torch.autocast("cpu", enabled=False))
    net, _, eng = _train(tmp_path, "fp16")
    assert isinstance(eng.scaler, torch.amp.GradScaler) and eng.scaler.get_scale() > 1
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b)
