"""The entry point (`mlsec`, `python -m mlsec`): the start-up fast path and the error boundary.

`mlsec scan` runs on every commit, and importing typer with the click it carries costs about
as much as picklescan's whole run on a large checkpoint. So a `scan` command line made only of
the options listed in mlsec/cli/scan_args.py (generated from the typer app) is parsed here, by
click's rules for that subset, and handed to mlsec.cli.run.scan_command exactly as the typer
command would hand it. Anything else (--help, another command, an unknown or malformed
option, a short option with its value attached, a value that is not one of the choices) goes
to the typer app, which owns the help text and every usage message. Written by hand because
no parser library starts faster than the scan it would delay; tests/spine/test_launch.py
holds both paths equal.

:func:`run` is the one place where errors become exit codes, for both paths: an
:class:`~mlsec.errors.MlsecError` is the user's to fix (its diagnostic, exit 2), Ctrl-C is
130, a closed stdout is 1 (as click does), anything else is a bug (exit 2, one line, no
traceback).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

from mlsec.cli import scan_args
from mlsec.errors import MlsecError

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED = 130  # the shell's code for SIGINT


def fail(message: str) -> None:
    """Print an error for the user on stderr."""
    sys.stderr.write(f"mlsec: error: {message}\n")
    sys.stderr.flush()


def _value(name: str, value: str) -> Any:
    """A value as click would convert it, or None when click would refuse it (typer says why)."""
    if not value or value.startswith("-"):
        return None
    if value not in scan_args.CHOICES.get(name, (value,)):
        return None
    if name in scan_args.INTEGERS:
        try:
            return int(value)
        except ValueError:
            return None
    return value


def parse_scan(argv: list[str]) -> dict[str, Any] | None:
    """The keyword arguments of scan_command for ``scan ...``, or None to let typer parse."""
    if not argv or argv[0] != "scan":
        return None
    values: dict[str, Any] = dict(scan_args.DEFAULTS)
    positional: list[str] = []
    tokens = iter(argv[1:])
    options_ended = False
    for token in tokens:
        if options_ended or not token.startswith("-") or token == "-":  # noqa: S105
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
        converted = _value(name, value if equals else next(tokens, ""))
        if converted is None:
            return None
        values[name] = (
            [*(values[name] or ()), converted] if name in scan_args.MULTIPLE else converted
        )
    if "" in positional or "-" in positional:
        return None  # typer's message for an empty or stdin PATH
    values[scan_args.ARGUMENT] = [Path(p) for p in positional] if positional else None
    for name in scan_args.PATHS:
        if values[name] is not None:
            values[name] = Path(values[name])
    return values


def _typer(argv: list[str]) -> int:
    """Let the typer app parse and run ``argv``; usage errors are click's (exit 2)."""
    import typer.main

    from mlsec.cli.app import app

    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="mlsec", standalone_mode=False)
    except Exception as exc:
        # click's usage errors (typer vendors click from 0.28 on, so matched by shape).
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            return exit_code
        if type(exc).__name__ == "Abort":  # click's answer to Ctrl-C before typer 0.28
            raise KeyboardInterrupt from None
        raise
    if code == EXIT_INTERRUPTED:  # typer 0.28 turns Ctrl-C into this exit code, silently
        raise KeyboardInterrupt
    return code if isinstance(code, int) else EXIT_OK


def run(argv: list[str] | None = None) -> int:
    """Run one command line and return its exit code: the one error boundary."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        request = parse_scan(args)
        if request is None:
            return _typer(args)
        from mlsec.cli.run import scan_command

        return scan_command(**request)
    except MlsecError as exc:
        fail(exc.diagnostic())
        return EXIT_ERROR
    except KeyboardInterrupt:
        fail("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`mlsec scan | head`): exit like click does, without a
        # second error when Python flushes stdout at exit.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FINDINGS
    except Exception as exc:  # last line of defence: a bug in mlsec
        fail(f"internal error: {type(exc).__name__}: {exc} (please report this)")
        return EXIT_ERROR


def main() -> NoReturn:
    """The console script."""
    code = run()
    # What the run built is freed at exit anyway: out of the collector's sight, the
    # interpreter's teardown skips collecting every object again (50 ms after a BOM scan).
    import gc

    gc.freeze()
    sys.exit(code)
