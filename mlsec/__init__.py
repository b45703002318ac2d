"""mlsec: a DevSecOps scanner for machine learning repositories.

The library API is :func:`mlsec.scan.scan`. The command line is a thin layer over it: the
typer app in :mod:`mlsec.cli` defines every command, :mod:`mlsec.commands` runs them, and
the entry point :mod:`mlsec.launch` parses plain `mlsec scan` command lines itself so that
the most frequent command starts without importing typer.
"""

__version__ = "0.1.0"
