"""The one ordered list of a run's stages, used by ``woodseg run --from/--to``, ``woodseg demo`` and the
benchmarks. A stage reads its inputs from the run folder (:class:`woodseg.runtime.paths.RunPaths`) and
skips work already done from the same inputs, so running a range of the list again costs only what changed.

Refinement: ``ir_labels`` -> ``irn`` -> ``masks`` (random walk) -> ``eval_masks``; DeepLab (``segmenter``,
``predict``) joins before ``eval_predictions``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from woodseg.config import Config
from woodseg.errors import ConfigError


@dataclass(frozen=True)
class Stage:
    name: str
    makes: str
    run: Callable[..., Any]


def _train(cfg: Config, *, restart: bool = False, progress: bool = True, **_: Any) -> Any:
    from woodseg.train.classifier import train_classifier

    return train_classifier(cfg, restart=restart, progress=progress)


def _cam(cfg: Config, *, restart: bool = False, progress: bool = True, shard: Any = None, **_: Any) -> Any:
    from woodseg.seeds.stage import cam_stage

    return cam_stage(cfg, restart=restart, progress=progress, shard=shard)


def _eval(cfg: Config, *, restart: bool = False, progress: bool = True, shard: Any = None,
          extra_protocol: dict[str, Any] | None = None, console: Any = None, **_: Any) -> Any:
    from woodseg.evaluate.stage import eval_stage

    return eval_stage(cfg, restart=restart, progress=progress, shard=shard, extra_protocol=extra_protocol,
                      console=console)


def _ir_labels(cfg: Config, *, restart: bool = False, progress: bool = True, shard: Any = None, **_: Any) -> Any:
    from woodseg.refine.ir_stage import ir_labels_stage

    return ir_labels_stage(cfg, restart=restart, progress=progress, shard=shard)


def _irn(cfg: Config, *, restart: bool = False, progress: bool = True, **_: Any) -> Any:
    from woodseg.refine.irn_stage import irn_stage

    return irn_stage(cfg, restart=restart, progress=progress)


def _masks(cfg: Config, *, restart: bool = False, progress: bool = True, shard: Any = None, **_: Any) -> Any:
    from woodseg.refine.masks_stage import masks_stage

    return masks_stage(cfg, restart=restart, progress=progress, shard=shard)


def _eval_masks(cfg: Config, *, restart: bool = False, progress: bool = True, shard: Any = None,
                console: Any = None, **_: Any) -> Any:
    from woodseg.evaluate.products import eval_masks_stage

    return eval_masks_stage(cfg, restart=restart, progress=progress, shard=shard, console=console)


def _eval_predictions(cfg: Config, *, restart: bool = False, progress: bool = True, shard: Any = None,
                      console: Any = None, **_: Any) -> Any:
    from woodseg.evaluate.products import eval_predictions_stage

    return eval_predictions_stage(cfg, restart=restart, progress=progress, shard=shard, console=console)


def _segmenter(cfg: Config, *, restart: bool = False, progress: bool = True, **_: Any) -> Any:
    from woodseg.segment.stages import segmenter_stage

    return segmenter_stage(cfg, restart=restart, progress=progress)


def _predict(cfg: Config, *, restart: bool = False, progress: bool = True, shard: Any = None, **_: Any) -> Any:
    from woodseg.segment.stages import predict_stage

    return predict_stage(cfg, restart=restart, progress=progress, shard=shard)


STAGES: tuple[Stage, ...] = (
    Stage("train", "classifier/last.pt", _train),
    Stage("cam", "seeds/<id>.npz", _cam),
    Stage("eval", "eval/seeds.json", _eval),
    Stage("ir_labels", "ir_labels/<id>.png", _ir_labels),
    Stage("irn", "irn/last.pt", _irn),
    Stage("masks", "masks/<id>.png", _masks),
    Stage("eval_masks", "eval/masks.json + eval/seeds-crf.json", _eval_masks),
    Stage("segmenter", "segmenter/last.pt", _segmenter),
    Stage("predict", "predictions/<split>[-crf]/<id>.png", _predict),
    Stage("eval_predictions", "eval/predictions-<split>[-crf].json", _eval_predictions),
)


def stage_names() -> list[str]:
    return [s.name for s in STAGES]


def select(start: str | None = None, stop: str | None = None) -> list[Stage]:
    """The stages from ``start`` to ``stop`` (inclusive; None: the first / the last), in pipeline order."""
    names = stage_names()
    for what, name in (("--from", start), ("--to", stop)):
        if name is not None and name not in names:
            raise ConfigError(f"{what} {name}: no such stage", fix=f"use one of: {', '.join(names)}")
    i = names.index(start) if start else 0
    j = names.index(stop) if stop else len(names) - 1
    if i > j:
        raise ConfigError(f"--from {start} comes after --to {stop}", fix=f"stages run in the order {', '.join(names)}")
    return list(STAGES[i:j + 1])


def run_stages(cfg: Config, *, start: str | None = None, stop: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run the selected stages in order; returns each stage's result by name.

    Under torchrun every process runs every stage (training as DDP, per-image stages on their shard), and
    all processes wait for each other between stages, so a stage never reads a shard that is unfinished.
    """
    from woodseg.train.distributed import hold_process_group, stage_barrier

    done: dict[str, Any] = {}
    with hold_process_group(cfg.runtime.device):
        for k, stage in enumerate(select(start, stop)):
            if k:
                stage_barrier(cfg.runtime.device)
            done[stage.name] = stage.run(cfg, **kwargs)
    return done
