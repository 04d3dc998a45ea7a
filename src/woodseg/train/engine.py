"""One training engine for every stage: poly LR over two parameter groups, resumable checkpoints,
per-step metrics, a progress bar with the loss terms and ETA, non-finite-loss guard, DDP-aware.

The stage supplies ``step_fn(batch) -> {name: weighted loss term}``; the engine sums the terms, steps the
optimizer, logs, and checkpoints atomically every ``checkpoint_every`` steps, every ``checkpoint_minutes``
and at the end, so a run killed at any moment resumes from its last checkpoint with the same data order
(see ``sampler.py``). Ctrl+C (SIGINT) or SIGTERM saves a checkpoint after the current step, then stops
(KeyboardInterrupt: exit 130; SIGTERM: exit 143); a second Ctrl+C stops at once without saving.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from woodseg.config import TrainConfig
from woodseg.errors import TrainingError
from woodseg.fsutil import (
    append_jsonl,
    atomic_write_text,
    clean_stale_temps,
    ensure_dir,
    read_jsonl,
)
from woodseg.models.checkpoint import load_checkpoint, save_checkpoint
from woodseg.runtime.amp import AmpMode, amp_dtype, autocast, grad_scaler
from woodseg.runtime.fingerprint import fingerprint  # noqa: F401 - re-exported for callers of the engine
from woodseg.train.distributed import DistInfo

log = logging.getLogger(__name__)


def make_optimizer(backbone: list[nn.Parameter], head: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.SGD:
    """SGD with IRN's two groups: backbone at lr, the new head at lr * classifier_lr_mult."""
    groups = [
        {"params": backbone, "lr": cfg.lr, "initial_lr": cfg.lr},
        {"params": head, "lr": cfg.lr * cfg.classifier_lr_mult, "initial_lr": cfg.lr * cfg.classifier_lr_mult},
    ]
    groups = [g for g in groups if g["params"]]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def poly_lr(initial: float, step: int, max_steps: int, power: float) -> float:
    """lr = initial * (1 - step/max_steps)^power, set before each step; frozen at its last value after."""
    step = min(step, max_steps - 1)
    return initial * (1.0 - step / max_steps) ** power


class Engine:
    """Runs ``step_fn`` from ``start`` to ``max_steps``; owns the optimizer schedule, logs and checkpoints."""

    def __init__(self, runner: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer, *, max_steps: int,
                 steps_per_epoch: int, out_dir: Path, cfg: TrainConfig, run_fingerprint: str,
                 make_checkpoint: Callable[[], dict[str, Any]], dist: DistInfo | None = None,
                 progress: bool = True, desc: str = "train", amp: AmpMode | None = None,
                 scaler: torch.amp.GradScaler | None = None) -> None:
        """``runner`` is what a step calls (possibly DDP-wrapped); ``model`` is what the checkpoint holds.

        ``amp`` (default: the process-wide ``runtime.amp``) runs each step under autocast on CUDA only
        (:mod:`woodseg.runtime.amp`); float16 steps go through a ``GradScaler`` (``scaler``: a given one
        instead; its state is checkpointed either way).
        """
        self.runner, self.model, self.optimizer = runner, model, optimizer
        self.max_steps, self.steps_per_epoch = max_steps, steps_per_epoch
        self.out_dir, self.cfg, self.run_fingerprint = Path(out_dir), cfg, run_fingerprint
        self.make_checkpoint = make_checkpoint
        self.dist = dist or DistInfo()
        self.progress, self.desc = progress, desc
        self.ckpt_path = self.out_dir / "last.pt"
        self.metrics_path = self.out_dir / "metrics.jsonl"
        self.saved_at = time.monotonic()
        self.device = next(model.parameters()).device
        self.amp_dtype = amp_dtype(self.device, amp)
        self.scaler = scaler if scaler is not None else grad_scaler(self.device, self.amp_dtype)

    # ---- checkpoints -------------------------------------------------------------------------------------

    def resume(self, restart: bool = False) -> tuple[int, bool]:
        """Load ``last.pt`` if present; returns (start step, already finished). Refuses another run's file."""
        if self.dist.is_main:
            ensure_dir(self.out_dir)
            clean_stale_temps(self.out_dir)  # e.g. a half-written .last.pt.* of a killed save
        if restart or not self.ckpt_path.exists():
            if self.dist.is_main:
                self.metrics_path.unlink(missing_ok=True)
            return 0, False
        state = load_checkpoint(self.ckpt_path, what="training checkpoint")
        if state.get("run_fingerprint") != self.run_fingerprint:
            raise TrainingError(
                "the output folder holds a checkpoint of a run with a different config or data",
                path=self.ckpt_path,
                fix="choose a new out_dir, or pass --restart to discard it",
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        step = int(state["step"])
        if self.dist.is_main and self.metrics_path.exists():  # drop records newer than the checkpoint
            kept = [r for r in read_jsonl(self.metrics_path) if r.get("step", 0) <= step]
            atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))
        log.info("resuming %s from step %d/%d", self.ckpt_path, step, self.max_steps)
        return step, bool(state.get("finished", False))

    def save(self, step: int, finished: bool) -> None:
        if not self.dist.is_main:
            return
        state = self.make_checkpoint()
        state.update(optimizer=self.optimizer.state_dict(), step=step, finished=finished,
                     run_fingerprint=self.run_fingerprint, max_steps=self.max_steps)
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        save_checkpoint(self.ckpt_path, state)
        self.saved_at = time.monotonic()

    # ---- the loop ----------------------------------------------------------------------------------------

    def run(self, batches: Iterable[Any], step_fn: Callable[[Any], dict[str, torch.Tensor]], start: int,
            on_epoch_start: Callable[[int], None] | None = None) -> None:
        cfg = self.cfg
        bar = tqdm(total=self.max_steps, initial=start, desc=self.desc, unit="step",
                   disable=not (self.progress and self.dist.is_main), dynamic_ncols=True)
        t_last, n_images = time.perf_counter(), 0
        step = start
        it = iter(batches)
        self.saved_at = time.monotonic()
        with stop_requests() as stop:

            def stop_if_asked() -> None:
                """Between steps model and optimizer agree: save them and stop if a signal came."""
                if self._all_agree(stop.signum is not None):
                    bar.close()
                    self.save(step, finished=False)
                    log.warning("stopped by %s at step %d/%d; %s holds it: re-run the same command to resume",
                                signal.Signals(stop.signum or signal.SIGINT).name, step, self.max_steps,
                                self.ckpt_path)
                    stop.exit()

            while step < self.max_steps:
                stop_if_asked()
                if (step == start or step % self.steps_per_epoch == 0) and on_epoch_start is not None:
                    on_epoch_start(step // self.steps_per_epoch)  # may take minutes (W-OoD centres)
                    stop_if_asked()
                batch = next(it)
                for group in self.optimizer.param_groups:
                    group["lr"] = poly_lr(group["initial_lr"], step, self.max_steps, cfg.poly_power)
                self.runner.train()
                with autocast(self.device, self.amp_dtype):
                    terms = step_fn(batch) if batch is not None else {}
                if not terms:  # every image of the batch was unreadable and skipped
                    step += 1
                    bar.update(1)
                    continue
                loss = sum(terms.values())
                values = {k: float(v.detach()) for k, v in terms.items()}
                if not math.isfinite(float(loss.detach())):
                    raise TrainingError(
                        f"loss became non-finite at step {step} "
                        f"({', '.join(f'{k}={v:.4g}' for k, v in values.items())}); "
                        f"the last good checkpoint ({self.ckpt_path.name}) is kept",
                        path=self.out_dir,
                        fix="lower the stage's learning rate (train.lr, irn.lr or segmenter.lr) or wood.lam, check the inputs, then re-run (it resumes from the checkpoint)",
                    )
                self.optimizer.zero_grad(set_to_none=True)
                if self.scaler is None:
                    loss.backward()
                    self.optimizer.step()
                else:  # float16 autocast: scale the loss so small gradients do not underflow
                    self.scaler.scale(loss).backward()
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                step += 1
                n_images += int(batch_size_of(batch))
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=False)
                if self.dist.is_main and (step % cfg.log_every == 0 or step == self.max_steps):
                    now = time.perf_counter()
                    append_jsonl(self.metrics_path, {
                        "step": step, "epoch": (step - 1) // self.steps_per_epoch,
                        "lr": self.optimizer.param_groups[0]["lr"], "loss": float(loss.detach()), **values,
                        "images_per_s": n_images * self.dist.world / max(now - t_last, 1e-9), "time": time.time(),
                    })
                    t_last, n_images = now, 0
                if step < self.max_steps and (step % cfg.checkpoint_every == 0 or self._checkpoint_due()):
                    self.save(step, finished=False)
            bar.close()
            self.save(step, finished=True)
            if stop.signum is not None:  # asked to stop during the last step: the run is complete, still stop
                stop.exit()

    def _checkpoint_due(self) -> bool:
        """Time-based checkpointing: ``checkpoint_minutes`` since the last save (main process only saves)."""
        minutes = self.cfg.checkpoint_minutes
        return minutes is not None and time.monotonic() - self.saved_at >= 60.0 * minutes

    def _all_agree(self, flag: bool) -> bool:
        """True if any process got a stop signal: every rank then saves/stops at the same step."""
        if not (self.dist.enabled and dist.is_initialized()):
            return flag
        device = next(self.model.parameters()).device
        t = torch.tensor([int(flag)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())


class StopRequests:
    """The signal a run was asked to stop by (None until one arrives)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:  # a second Ctrl+C: stop now, save nothing
            self.restore()
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("%s received: finishing this step and saving a checkpoint (Ctrl+C again stops at once, "
                    "losing the steps since the last checkpoint)", signal.Signals(signum).name)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()

    def exit(self) -> None:
        """Leave as the signal would have: KeyboardInterrupt for SIGINT (exit 130), exit 128+N otherwise."""
        if self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + int(self.signum or 0))


@contextmanager
def stop_requests() -> Iterator[StopRequests]:
    """Turn SIGINT/SIGTERM into a stop request the training loop honours at the next step boundary.

    Only the main thread can install handlers; elsewhere the signals keep their default effect.
    """
    stop = StopRequests()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not signal.SIG_IGN:  # e.g. nohup: keep ignoring
                stop.previous[signum] = signal.signal(signum, stop.handle)
    try:
        yield stop
    finally:
        stop.restore()


def batch_size_of(batch: Any) -> int:
    """Images in a batch: the first dimension of its first tensor (batches may nest dicts and tuples)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, dict):
        return batch_size_of(batch.get("x", next(iter(batch.values()))))
    if isinstance(batch, (tuple, list)) and batch:
        return batch_size_of(batch[0])
    return 0
