"""Training DeepLab-v2 on (pseudo) masks with the shared engine: deeplab-pytorch's optimisation.

SGD with three groups (backbone 1x, ASPP weights 10x, ASPP biases 20x without weight decay), momentum 0.9,
weight decay 5e-4, lr 2.5e-4 with poly(0.9) decay, cross entropy summed over the MSC outputs. deeplab-pytorch
accumulates two batches of 5; here a step takes the whole batch (set the batch size to 10), which gives the
same update up to how the per-pixel mean is weighted between the two halves.

On CUDA the engine runs each step under autocast (``woodseg.runtime.amp``: bfloat16 where the GPU supports
it, else float16 with a GradScaler); on the CPU it stays float32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from woodseg.config import TrainConfig
from woodseg.models.deeplab import MSC, deeplab_optimizer, msc_loss
from woodseg.train.distributed import DistInfo
from woodseg.train.engine import Engine

DEEPLAB_TRAIN = {"lr": 2.5e-4, "momentum": 0.9, "weight_decay": 5e-4, "poly_power": 0.9}


def deeplab_step(model: torch.nn.Module, batch: dict[str, torch.Tensor],
                 channels_last: bool = False) -> dict[str, torch.Tensor]:
    """Loss terms of one batch ``{"img": [B, 3, S, S], "label": [B, S, S]}`` (the engine runs it under the
    ``runtime.amp`` autocast on CUDA; the loss is taken in float32)."""
    device = next(model.parameters()).device
    x = batch["img"].to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    outputs = model(x)
    outputs = [o.float() for o in outputs] if isinstance(outputs, list) else outputs.float()
    return {"ce": msc_loss(outputs, batch["label"].to(device, non_blocking=True))}


def train_deeplab(model: MSC, batches: Iterable[dict[str, torch.Tensor]] | Callable[[int], Iterable[Any]], *, cfg: TrainConfig, max_steps: int,
                  steps_per_epoch: int, out_dir: Path, run_fingerprint: str, extra: dict[str, Any] | None = None,
                  runner: torch.nn.Module | None = None, dist: DistInfo | None = None, restart: bool = False,
                  progress: bool = True, lr_mults: tuple[float, float] = (10.0, 20.0), channels_last: bool = False,
                  desc: str = "deeplab") -> None:
    """Train with the engine (resumable ``last.pt``, metrics.jsonl); ``runner`` may be the DDP-wrapped model.

    ``lr_mults`` are the ASPP weight and bias learning-rate multipliers. ``batches`` is an iterable, or a
    function of the step training resumes from that returns the batches from that step on.
    """
    optimizer = deeplab_optimizer(model, cfg.lr, cfg.momentum, cfg.weight_decay, *lr_mults)
    runner = runner or model
    engine = Engine(runner, model, optimizer, max_steps=max_steps, steps_per_epoch=steps_per_epoch,
                    out_dir=out_dir, cfg=cfg, run_fingerprint=run_fingerprint,
                    make_checkpoint=lambda: {"model": model.state_dict(), **(extra or {})}, dist=dist,
                    progress=progress, desc=desc)
    start, finished = engine.resume(restart)
    if finished:
        return
    if callable(batches):
        batches = batches(start)
    engine.run(batches, lambda b: deeplab_step(runner, b, channels_last), start)
