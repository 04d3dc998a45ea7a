"""Stage subcommands: config, train, cam, eval, run, demo. Each takes ``--config`` and ``key=value`` overrides."""

from __future__ import annotations

from pathlib import Path

import typer

from woodseg.config import bundled_config_names, dump_config, load_config

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML file or bundled config name (see `woodseg config list`).")
OverridesArg = typer.Argument(None, help="Config overrides as section.key=value, e.g. train.epochs=3.")


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
        typer.echo(dump_config(load_config(config, overrides or [])), nl=False)

    app.add_typer(config_app, name="config")


def _load(config: str | Path | None, overrides: list[str] | None):
    return load_config(config, overrides or [])
