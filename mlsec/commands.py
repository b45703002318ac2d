"""What `mlsec scan` and `mlsec bom` do once their command line is parsed.

Two parsers call these: the typer app (mlsec/cli.py, the definition of the command line) and
the start-up fast path (mlsec/launch.py), so a scan behaves the same whichever one read the
arguments. Nothing here imports typer.

Exit codes: 0 nothing at or above --fail-on, 1 at least one such finding, 2 mlsec could not
do its job (bad flags, unreadable PATH, invalid configuration, a crash), 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsec.errors import MlsecError

if TYPE_CHECKING:
    from mlsec.report import ScanReport

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED = 130  # the shell's code for SIGINT


def fail(message: str) -> None:
    """Print an error for the user on stderr."""
    sys.stderr.write(f"mlsec: error: {message}\n")
    sys.stderr.flush()


def split_ids(values: list[str] | None) -> tuple[str, ...] | None:
    """Repeated and comma-separated rule ids (--select A,B --select C) as one tuple."""
    if not values:
        return None
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip())


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """A rich progress bar on stderr, only when stderr is a terminal."""
    if not enabled:
        yield lambda description, total: lambda n: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:

        def start(description: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(description, total=total or None)
            return lambda n: progress.advance(task, n)

        yield start


def write_output(text: str, output: Path | None, *, append: bool = False) -> None:
    """Write a report to stdout, or to (or at the end of) a file."""
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with open(output, "a" if append else "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise MlsecError(f"cannot write {output}: {exc.strerror}") from None


def run_scan(path: Path, config: Path | None, **flags: Any) -> ScanReport:
    """Options from the config file and flags, then the scan, with progress on a terminal."""
    from mlsec.config import build_options
    from mlsec.scan import scan

    show_progress = sys.stderr.isatty()
    options = build_options(path, config_file=config, show_progress=show_progress, **flags)
    with _progress(show_progress) as progress:
        return scan(options, progress=progress)


def warn_errors(report: ScanReport) -> None:
    if report.errors:
        sys.stderr.write(
            f"mlsec: {len(report.errors)} file(s) could not be fully scanned; "
            "see 'errors' in a JSON report\n"
        )


def resolved(path: Path | None) -> Path | None:
    """An option's path made absolute (None stays None)."""
    return path.resolve() if path else None


def scan_command(
    *,
    path: Path,
    fmt: str,
    output: Path | None,
    fail_on: str | None,
    config: Path | None,
    offline: bool | None,
    vuln_db: Path | None,
    baseline: Path | None,
    select: list[str] | None,
    ignore: list[str] | None,
    trusted_root: Path | None,
    no_git: bool,
    summary: Path | None,
) -> int:
    """`mlsec scan`: the keyword names are the typer parameters of `mlsec.cli.scan`.

    Returns the exit code; user errors are printed here and give 2.
    """
    from mlsec.findings import Severity
    from mlsec.render import render

    try:
        report = run_scan(
            path,
            config,
            offline=offline,
            vuln_db=resolved(vuln_db),
            trusted_root=resolved(trusted_root),
            baseline=resolved(baseline),
            select=split_ids(select),
            ignore=split_ids(ignore),
            use_git=False if no_git else None,
            build_bom=True if fmt == "cyclonedx" else None,
        )
        if fail_on is not None:
            report = report._replace(fail_on=None if fail_on == "none" else Severity(fail_on))
        if fmt == "table" and output is None:
            from rich.console import Console

            from mlsec.render.table import build

            # Piped output (CI logs) gets a readable width rather than rich's 80 columns.
            wide = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
            Console(soft_wrap=False, width=wide).print(build(report))
        else:
            write_output(render(report, fmt), output)
            warn_errors(report)
        if summary is not None:
            write_output(render(report, "markdown"), summary, append=True)
    except MlsecError as exc:
        fail(exc.diagnostic())
        return EXIT_ERROR
    except KeyboardInterrupt:
        # Handled here, not by click (which exits 1, the code for "findings" in mlsec).
        fail("interrupted")
        return EXIT_INTERRUPTED
    return report.exit_code
