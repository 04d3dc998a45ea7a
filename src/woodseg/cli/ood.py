"""``woodseg ood``: build candidate pools, rank them by p(c), review them in the browser, export lists."""

from __future__ import annotations

import typer

app = typer.Typer(help="Hard-OoD collection (paper Sec. 3.1): pool -> rank -> review -> export.", no_args_is_help=True)
