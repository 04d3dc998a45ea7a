"""The ``woodseg`` command: one subcommand per pipeline stage, an ``ood`` group, ``demo`` and ``run``."""

from __future__ import annotations

import logging
import sys

import typer

from woodseg.cli.data import app as data_app
from woodseg.cli.ood import app as ood_app
from woodseg.cli.pretrain import register_pretrain_command
from woodseg.cli.stages import register_demo_command, register_stage_commands
from woodseg.errors import WoodsegError

app = typer.Typer(
    name="woodseg",
    help="Weakly supervised semantic segmentation with out-of-distribution data (W-OoD, CVPR 2022).\n\n"
    "Stages talk through files in a run folder (config out_dir): train -> cam -> eval; the ood group "
    "builds hard-OoD lists; demo runs everything on the embedded benchmark.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(ood_app, name="ood")
app.add_typer(data_app, name="data")
register_stage_commands(app)
register_demo_command(app)
register_pretrain_command(app)


def main() -> None:
    """Entry point: run the app; a WoodsegError prints its message and fix instead of a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except WoodsegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
