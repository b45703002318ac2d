"""The report formats, and which one an ``--output`` file gets.

One enum lists the formats; the renderer registry (mlsec.render.RENDERERS), the file-name
extensions below and the command line's choices are all checked against it
(tests/spine/test_cli_formats.py), so a format cannot be half added.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import NamedTuple


class Format(str, enum.Enum):
    table = "table"
    json = "json"
    sarif = "sarif"
    cyclonedx = "cyclonedx"
    markdown = "markdown"


# Longest suffix first: "x.cdx.json" is CycloneDX, not mlsec's JSON report.
EXTENSIONS: tuple[tuple[str, Format], ...] = (
    (".cdx.json", Format.cyclonedx),
    (".sarif.json", Format.sarif),
    (".sarif", Format.sarif),
    (".json", Format.json),
    (".md", Format.markdown),
    (".markdown", Format.markdown),
    (".txt", Format.table),
)


class Output(NamedTuple):
    """One report to write: a format and a file (None: standard output)."""

    fmt: Format
    path: Path | None


def format_of(name: str) -> Format | None:
    """The format a file name implies through its extension, if any."""
    lowered = name.lower()
    for suffix, fmt in EXTENSIONS:
        if lowered.endswith(suffix) and len(lowered) > len(suffix):
            return fmt
    return None


def parse_output(value: str, default: Format | None) -> Output:
    """``--output FILE`` (format from the extension, else ``default``) or ``FORMAT=FILE``;
    ``-`` is standard output."""
    prefix, equals, rest = value.partition("=")
    if equals and rest and prefix in Format.__members__:
        return Output(Format(prefix), None if rest == "-" else Path(rest))
    fmt = format_of(value) or default or Format.table
    return Output(fmt, None if value == "-" else Path(value))


def plan_outputs(fmt: Format | None, outputs: list[str] | None) -> list[Output]:
    """Every report one run writes.

    One ``--output FILE`` with ``--format``: the file gets that format, as in every scanner
    users know (``-f cyclonedx -o bom.json``). Otherwise each ``--output`` gets its own format
    (``FORMAT=FILE``, else the extension, else ``--format``). Standard output gets
    ``--format`` (default: table) when there is no ``--output``, or when ``--format`` was
    given and no file already takes that format.
    """
    if fmt is not None and outputs and len(outputs) == 1:
        value = outputs[0]
        prefix, equals, rest = value.partition("=")
        if not (equals and rest and prefix in Format.__members__):
            return [Output(fmt, None if value == "-" else Path(value))]
    planned = [parse_output(value, fmt) for value in outputs or ()]
    if not planned or (fmt is not None and all(o.fmt is not fmt for o in planned)):
        planned.append(Output(fmt or Format.table, None))
    if sum(o.path is None for o in planned) > 1:
        from mlsec.errors import MlsecError

        raise MlsecError("only one report can go to standard output", hint="name a file")
    return planned
