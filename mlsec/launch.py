"""Console entry point (`mlsec`, `python -m mlsec`).

`mlsec scan` runs on every commit, and importing typer with the click it carries costs about
as much as picklescan's whole run on a large checkpoint. So a `scan` command line made only of
the options listed in mlsec/scan_args.py (generated from the typer app) is parsed here, by
click's rules for that subset, and handed to mlsec.commands.scan_command exactly as the typer
command would hand it. Anything else (--help, another command, an unknown or malformed
option, a short option with its value attached, a value that is not one of the choices) goes
to the typer app, which owns the help text and every error message. Written by hand because
no parser library starts faster than the scan it would delay; tests/spine/test_launch.py
holds both paths equal.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mlsec import scan_args


def parse_scan(argv: list[str]) -> dict[str, Any] | None:
    """The keyword arguments of scan_command for ``scan ...``, or None to let typer parse."""
    if not argv or argv[0] != "scan":
        return None
    values: dict[str, Any] = dict(scan_args.DEFAULTS)
    positional: list[str] = []
    tokens = iter(argv[1:])
    options_ended = False
    for token in tokens:
        if options_ended or not token.startswith("-"):
            positional.append(token)
            continue
        if token == "--":  # noqa: S105 - the end-of-options marker
            options_ended = True
            continue
        option, equals, value = token.partition("=") if token.startswith("--") else (token, "", "")
        if option in scan_args.FLAGS and not equals:
            flag_name, flag = scan_args.FLAGS[option]
            values[flag_name] = flag
            continue
        if option not in scan_args.VALUE_OPTIONS:
            return None
        name = scan_args.VALUE_OPTIONS[option]
        if not equals:
            value = next(tokens, "")
        # Empty values, values that look like options and unknown choices: typer's message.
        if not value or value.startswith("-") or value not in scan_args.CHOICES.get(name, (value,)):
            return None
        values[name] = [*(values[name] or ()), value] if name in scan_args.MULTIPLE else value
    if len(positional) > 1 or positional == [""]:
        return None
    if positional:
        values[scan_args.ARGUMENT] = positional[0]
    for name in scan_args.PATHS:
        if values[name] is not None:
            values[name] = Path(values[name])
    return values


def main() -> None:
    """Run the command line; an unexpected exception is a crash (exit 2), not a traceback."""
    from mlsec.commands import EXIT_ERROR, EXIT_INTERRUPTED, fail

    try:
        request = parse_scan(sys.argv[1:])
        if request is None:
            from mlsec.cli import app

            app()
        else:
            from mlsec.commands import scan_command

            sys.exit(scan_command(**request))
    except SystemExit:
        raise
    except KeyboardInterrupt:
        fail("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`mlsec scan | head`): exit like click does, without a
        # second error when Python flushes stdout at exit.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Exception as exc:  # last line of defence: a bug in mlsec
        fail(f"internal error: {type(exc).__name__}: {exc} (please report this)")
        sys.exit(EXIT_ERROR)
