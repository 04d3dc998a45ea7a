"""Refinement subcommands: ``ir-labels``, ``irn``, ``masks``, ``eval-masks``, ``eval-predictions``.

Each reads its config section (``ir_labels``, ``irn``, ``walk``) plus ``data`` and ``runtime`` and the
files the stage before it wrote under ``out_dir``; per-image stages take ``--shard i/n``.
"""

from __future__ import annotations

import typer

from woodseg.cli.stages import ConfigOpt, OverridesArg, QuietOpt, RestartOpt, ShardOpt
from woodseg.config import load_config


def register_refine_commands(app: typer.Typer) -> None:
    @app.command("ir-labels")
    def ir_labels(config: str = ConfigOpt, overrides: list[str] = OverridesArg, restart: bool = RestartOpt,
                  shard: str = ShardOpt, quiet: bool = QuietOpt) -> None:
        """Make IR labels from the seeds: confident fg/bg with the dense CRF, 255 between (IRN cam_to_ir_label).

        Thresholds: ir_labels.preset irn (0.30/0.05), wood (0.30/0.15), advcam (0.35/0.15), or ir_labels.fg/bg.
        Writes out_dir/ir_labels/<id>.png + index.json for ir_labels.split (default data.train_split).
        Needs seeds of that split (`woodseg cam` with cam.splits covering it). Sharded: --shard i/n or torchrun.
        """
        from woodseg.refine.ir_stage import ir_labels_stage
        from woodseg.runtime.shard import Shard

        out = ir_labels_stage(load_config(config, overrides or []), restart=restart, progress=not quiet,
                              shard=Shard.resolve(shard))
        typer.echo(f"ir_labels: {out}")

    @app.command()
    def irn(config: str = ConfigOpt, overrides: list[str] = OverridesArg, restart: bool = RestartOpt,
            quiet: bool = QuietOpt) -> None:
        """Train IRN's boundary branch on the IR labels (irn.* keys); resumes from out_dir/irn/last.pt.

        irn.weights: imagenet, a torchvision ResNet file, or `classifier` (the run's own classifier backbone,
        for data without ImageNet weights). Multi-GPU: torchrun --nproc_per_node=N -m woodseg irn ...
        """
        from woodseg.refine.irn_stage import irn_stage
        from woodseg.train.distributed import env_rank

        path = irn_stage(load_config(config, overrides or []), restart=restart, progress=not quiet)
        if env_rank() == 0:
            typer.echo(f"irn: {path}")

    @app.command()
    def masks(config: str = ConfigOpt, overrides: list[str] = OverridesArg, restart: bool = RestartOpt,
              shard: str = ShardOpt, quiet: bool = QuietOpt) -> None:
        """Make pseudo masks: IRN boundary map + random walk of the seeds (walk.* keys, presets irn/advcam/wood).

        Writes out_dir/masks/<id>.png + index.json for walk.splits (default: data.train_split and
        data.seed_split). Memory grows linearly with the pixel count. Sharded: --shard i/n or torchrun.
        """
        from woodseg.refine.masks_stage import masks_stage
        from woodseg.runtime.shard import Shard

        out = masks_stage(load_config(config, overrides or []), restart=restart, progress=not quiet,
                          shard=Shard.resolve(shard))
        typer.echo(f"masks: {out}")

    @app.command("eval-masks")
    def eval_masks(config: str = ConfigOpt, overrides: list[str] = OverridesArg,
                   restart: bool = typer.Option(False, "--restart", help="Evaluate again even if nothing changed."),
                   quiet: bool = QuietOpt) -> None:
        """Judge the pseudo masks and seed + CRF (Table 2: Seed, +CRF, Mask) on the seed split.

        Writes out_dir/eval/masks.json and eval/seeds-crf.json (mIoU, P, R, F1, per-class, protocol).
        """
        from woodseg.evaluate.products import eval_masks_stage

        eval_masks_stage(load_config(config, overrides or []), restart=restart, progress=not quiet)

    @app.command("eval-predictions")
    def eval_predictions(config: str = ConfigOpt, overrides: list[str] = OverridesArg,
                         restart: bool = typer.Option(False, "--restart", help="Evaluate again even if nothing changed."),
                         quiet: bool = QuietOpt) -> None:
        """Judge every out_dir/predictions/<split>[-crf]/ folder whose split has pixel masks.

        Writes out_dir/eval/predictions-<split>[-crf].json (mIoU, P, R, F1, per-class, protocol).
        """
        from woodseg.evaluate.products import eval_predictions_stage

        eval_predictions_stage(load_config(config, overrides or []), restart=restart, progress=not quiet)
