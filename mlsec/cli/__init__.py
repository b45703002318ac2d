"""The command line: a thin layer over :func:`mlsec.scan.scan`.

- :mod:`mlsec.cli.launch`: the entry point (`mlsec`, `python -m mlsec`) and the one error
  boundary. A plain `mlsec scan` command line is parsed there from a table
  (:mod:`mlsec.cli.scan_args`, generated from the typer app by scripts/sync_cli.py), so the
  most frequent command starts without importing typer.
- :mod:`mlsec.cli.app`: the typer app that defines every command, its options and its help.
- :mod:`mlsec.cli.run`: what the commands do once parsed (shared by both parsers).
- :mod:`mlsec.cli.outputs`: the output formats and how ``--output`` names them.

Importing this package must stay light (no typer, click or rich).
"""

from mlsec.cli.launch import main

__all__ = ["main"]
