"""Stage subcommands: config, train, cam, eval, run, demo (refinement commands: :mod:`woodseg.cli.refine`). Each takes ``--config`` and ``key=value`` overrides.

Every stage reads and writes files under the config's ``out_dir`` and saves its resolved config there,
so stages can be re-run, resumed after a crash (they skip finished work) and inspected alone.
"""

from __future__ import annotations

from pathlib import Path

import typer

from woodseg.config import bundled_config_names, dump_config, load_config

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML file or bundled config name (see `woodseg config list`).")
OverridesArg = typer.Argument(None, help="Config overrides as section.key=value, e.g. train.epochs=3.")
RestartOpt = typer.Option(False, "--restart", help="Discard this stage's earlier output instead of resuming.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars.")
ShardOpt = typer.Option(None, "--shard", help="This process's share i/n (0-based); default RANK/WORLD_SIZE under torchrun.")


def register_stage_commands(app: typer.Typer) -> None:
    config_app = typer.Typer(help="Show bundled configs and resolve overrides.", no_args_is_help=True)

    @config_app.command("list")
    def config_list() -> None:
        """List the configs bundled with woodseg."""
        for name in bundled_config_names():
            typer.echo(name)

    @config_app.command("show")
    def config_show(
        config: str = typer.Argument(None, help="Bundled name or YAML path; omit for the defaults."),
        overrides: list[str] = OverridesArg,
    ) -> None:
        """Print the fully resolved config (every key, with overrides applied)."""
        if config is not None and "=" in config and not Path(config).exists():  # `config show a.b=1`: no config
            config, overrides = None, [config, *(overrides or [])]
        typer.echo(dump_config(load_config(config, overrides or [])), nl=False)

    @config_app.command("reference")
    def config_reference_cmd() -> None:
        """Print every config key with its default and meaning (Markdown)."""
        from woodseg.config import config_reference

        typer.echo(config_reference(), nl=False)

    app.add_typer(config_app, name="config")

    @app.command()
    def train(config: str = ConfigOpt, overrides: list[str] = OverridesArg, restart: bool = RestartOpt,
              quiet: bool = QuietOpt) -> None:
        """Train the classifier: baseline (wood.variant=none) or W-OoD (paper/official) or a naive baseline.

        Writes out_dir/classifier/{last.pt, metrics.jsonl, config.yaml[, centres.npz]}. Resumes from
        last.pt after an interruption. W-OoD fine-tunes a trained classifier: set train.init_from.
        Multi-GPU: torchrun --nproc_per_node=N -m woodseg train ...
        """
        from woodseg.train.classifier import train_classifier
        from woodseg.train.distributed import env_rank

        path = train_classifier(load_config(config, overrides or []), restart=restart, progress=not quiet)
        if env_rank() == 0:  # under torchrun, one line from rank 0 only
            typer.echo(f"classifier: {path}")

    @app.command()
    def cam(config: str = ConfigOpt, overrides: list[str] = OverridesArg, restart: bool = RestartOpt,
            checkpoint: Path = typer.Option(None, help="Classifier to use; default out_dir/classifier/last.pt."),
            shard: str = ShardOpt, quiet: bool = QuietOpt) -> None:
        """Make multi-scale + flip CAM seeds (IRN make_cam) for the seed and held-out splits.

        Writes out_dir/seeds/<id>.npz (keys, cam at stride 4, high_res, scales, size) and index.json.
        Sharded: --shard i/n on several processes or machines, or torchrun --nproc_per_node=N -m woodseg cam.
        """
        from woodseg.runtime.shard import Shard
        from woodseg.seeds.stage import cam_stage

        out = cam_stage(load_config(config, overrides or []), checkpoint=checkpoint, restart=restart,
                        progress=not quiet, shard=Shard.resolve(shard))
        typer.echo(f"seeds: {out}")

    @app.command("eval")
    def eval_(config: str = ConfigOpt, overrides: list[str] = OverridesArg,
              seeds: Path = typer.Option(None, help="Seed folder; default out_dir/seeds."),
              restart: bool = typer.Option(False, "--restart", help="Evaluate again even if nothing changed."),
              shard: str = ShardOpt, quiet: bool = QuietOpt,
              control: Path = typer.Option(None, help="Run folder of the no-OoD control, for the safeguard."),
              safeguard: bool = typer.Option(True, help="For a W-OoD run: compare it with F_in (train.init_from) "
                                                        "on mask-free signals and warn if it looks worse."),
              safeguard_split: str = typer.Option(None, help="Labelled split for the safeguard's held-out mAP "
                                                             "(default: data.heldout_split).")) -> None:
        """Judge seeds against pixel masks: threshold sweep, mIoU, precision, recall, F1, per-class IoU.

        Writes out_dir/eval/seeds.json (the whole curve, the best row, per-class scores, the protocol).
        Sharded like `cam`: each shard writes its part; the one that finds every part writes the result.
        For a W-OoD run also writes out_dir/eval/safeguard.json: held-out mAP and CAM peak share of W-OoD,
        F_in and the control, with a warning when W-OoD's CAM peak share falls below F_in's (signals a user without masks has).
        """
        from woodseg.evaluate.stage import eval_stage
        from woodseg.runtime.shard import Shard

        sh = Shard.resolve(shard)
        res = eval_stage(load_config(config, overrides or []), seed_dir=seeds, progress=not quiet, shard=sh,
                         restart=restart)
        if res is None:
            typer.echo(f"eval part of {sh.name} written; the last shard to finish writes eval/seeds.json")
        elif safeguard:
            from woodseg.evaluate.safeguard import format_report, safeguard_for_config

            report = safeguard_for_config(load_config(config, overrides or []), control, heldout_split=safeguard_split)
            if report is not None:
                typer.echo(format_report(report))

    @app.command()
    def segmenter(config: str = ConfigOpt, overrides: list[str] = OverridesArg, restart: bool = RestartOpt,
                  quiet: bool = QuietOpt) -> None:
        """Train DeepLab-v2 on the pseudo masks (segmenter.labels=masks) or ground truth (=gt).

        Writes out_dir/segmenter/{last.pt, metrics.jsonl, config.yaml, stage.json}. Resumes after an
        interruption; retrains when the masks change. Multi-GPU: torchrun --nproc_per_node=N -m woodseg segmenter.
        """
        from woodseg.segment.stages import segmenter_stage
        from woodseg.train.distributed import env_rank

        path = segmenter_stage(load_config(config, overrides or []), restart=restart, progress=not quiet)
        if env_rank() == 0:
            typer.echo(f"segmenter: {path}")

    @app.command()
    def predict(config: str = ConfigOpt, overrides: list[str] = OverridesArg,
                checkpoint: Path = typer.Option(None, help="Segmenter to use; default out_dir/segmenter/last.pt."),
                restart: bool = typer.Option(False, "--restart", help="Remake this shard's predictions."),
                shard: str = ShardOpt, quiet: bool = QuietOpt) -> None:
        """Segment the predict.splits (default: the held-out split): scales x flip, optional dense CRF.

        Writes out_dir/predictions/<split>/<id>.png (+ <split>-crf/ with predict.crf) and index.json.
        Sharded: --shard i/n on several processes or machines, or under torchrun.
        """
        from woodseg.runtime.shard import Shard
        from woodseg.segment.stages import predict_stage

        for folder in predict_stage(load_config(config, overrides or []), checkpoint=checkpoint, restart=restart,
                                    progress=not quiet, shard=Shard.resolve(shard)):
            typer.echo(f"predictions: {folder}")

    @app.command()
    def run(config: str = ConfigOpt, overrides: list[str] = OverridesArg, quiet: bool = QuietOpt,
            start: str = typer.Option(None, "--from", help="First stage to run (default: the first)."),
            stop: str = typer.Option(None, "--to", help="Last stage to run (default: the last)."),
            restart: bool = typer.Option(False, "--restart", help="Discard the selected stages' earlier output.")) -> None:
        """Run the pipeline's stages in order (train, cam, eval, ir_labels, irn, masks, eval_masks, ...); each
        resumes or skips finished work.

        Stages whose inputs changed (e.g. the classifier train.init_from points to) are redone.
        """
        from woodseg.pipeline.stages import run_stages

        run_stages(load_config(config, overrides or []), start=start, stop=stop, progress=not quiet, restart=restart)

    from woodseg.cli.refine import register_refine_commands

    register_refine_commands(app)


def register_demo_command(app: typer.Typer) -> None:
    @app.command()
    def demo(config: str = typer.Option("demo", "--config", "-c", help="Bundled name or YAML path."),
             overrides: list[str] = OverridesArg, quiet: bool = QuietOpt,
             cache_dir: Path = typer.Option(None, help="Benchmark cache; default $WOODSEG_CACHE or ~/.cache/woodseg."),
             full: bool = typer.Option(False, "--full", help="Also refine F_in and W-OoD to pseudo masks and train "
                                       "DeepLab on them (Tables 2 and 3; same as demo.refine=true).")) -> None:
        """The main job: W-OoD end to end on the embedded spurious-correlation benchmark (no download).

        Generates the benchmark (cached), trains the baseline F_in, ranks the candidate OoD pool by p(c),
        prunes hidden positives with a simulated reviewer, fine-tunes W-OoD and a no-OoD control, makes CAM
        seeds, evaluates them on the training images' masks and a held-out split, prints the mask-free
        safeguard, and writes out_dir/report.html. --full goes on through IR labels, IRN, the random walk
        and DeepLab for F_in and W-OoD; a finished seeds-only run is reused, not redone.
        """
        from woodseg.pipeline.demo import run_demo

        extra = ["demo.refine=true"] if full else []
        run_demo(load_config(config, [*(overrides or []), *extra]), progress=not quiet, cache_dir=cache_dir)
