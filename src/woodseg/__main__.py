"""``python -m woodseg`` (what torchrun launches) is the ``woodseg`` command."""

from woodseg.cli import main

main()
