"""What the commands do once their command line is parsed.

Two parsers call :func:`scan_command`: the typer app (mlsec/cli/app.py, the definition of the
command line) and the start-up fast path (mlsec/cli/launch.py), so a scan behaves the same
whichever one read the arguments. Nothing here imports typer, and nothing here catches
errors: an :class:`~mlsec.errors.MlsecError` goes to the one boundary in launch.py.

Exit codes: 0 nothing at or above --fail-on, 1 at least one such finding, 2 mlsec could not
do its job (bad flags, unreadable PATH, invalid configuration, an analyzer that failed), 130
interrupted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsec.cli import scan_args
from mlsec.cli.outputs import Format, Output, plan_outputs
from mlsec.errors import MlsecError

if TYPE_CHECKING:
    from mlsec.config import ScanOptions
    from mlsec.report import ScanReport

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _from_text(name: str, text: str, where: str) -> Any:
    """An environment variable's value converted like the option's command-line value."""
    if name in scan_args.FLAG_PARAMETERS:
        lowered = text.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise MlsecError(f"{where}={text!r}: expected one of {', '.join(_TRUE + _FALSE)}")
    choices = scan_args.CHOICES.get(name)
    if choices is not None and text not in choices:
        raise MlsecError(f"{where}={text!r}: expected one of {', '.join(choices)}")
    if name in scan_args.INTEGERS:
        try:
            return int(text)
        except ValueError:
            raise MlsecError(f"{where}={text!r}: expected a whole number") from None
    if name in scan_args.PATHS:
        return Path(text)
    if name in scan_args.MULTIPLE:
        return [text]
    return text


def with_environment(
    values: Mapping[str, Any], environ: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    """``values`` with every option the command line left at its default taken from its
    environment variable, ``MLSEC_`` and the long option's name (``--fail-on``:
    ``MLSEC_FAIL_ON``); flags override the environment."""
    out = dict(values)
    for variable, name in scan_args.ENVIRONMENT.items():
        text = environ.get(variable)
        if text and out.get(name) in (None, scan_args.DEFAULTS[name], [], ()):
            out[name] = _from_text(name, text, variable)
    return out


def split_ids(values: list[str] | None) -> tuple[str, ...] | None:
    """Repeated and comma-separated rule ids (--select A,B --select C) as one tuple."""
    if not values:
        return None
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip())


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``K/N`` (1 <= K <= N) as a pair."""
    if text is None:
        return None
    from mlsec.selection import shard_of

    pair = shard_of(text)
    if pair is None:
        raise MlsecError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. 2/4")
    return pair


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """A rich progress bar on stderr."""
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


def resolved(path: Path | None) -> Path | None:
    """An option's path made absolute (None stays None)."""
    return path.resolve() if path else None


def build_all(
    paths: list[Path], config: Path | None, no_config: bool = False, **flags: Any
) -> list[ScanOptions]:
    """The options of each PATH (each finds its own configuration)."""
    from mlsec.config import build_options

    if config is not None and no_config:
        raise MlsecError("--config and --no-config exclude each other")
    return [build_options(p, config_file=config, no_config=no_config, **flags) for p in paths]


def run_scan(
    paths: list[Path],
    config: Path | None,
    *,
    show_progress: bool | None = None,
    **flags: Any,
) -> ScanReport:
    """Options from configuration and flags, then the scan, with progress on a terminal."""
    from mlsec.scan import scan_paths

    enabled = sys.stderr.isatty() if show_progress is None else show_progress
    options = build_all(paths, config, show_progress=enabled, **flags)
    with _progress(enabled) as progress:
        return scan_paths(options, progress=progress)


def warn_errors(report: ScanReport) -> None:
    for problem in report.config_problems:
        sys.stderr.write(f"mlsec: error: {problem}\n")
    if report.errors:
        sys.stderr.write(
            f"mlsec: {len(report.errors)} file(s) could not be fully scanned; "
            "see 'errors' in a JSON report\n"
        )


def _color(choice: str | None) -> dict[str, Any]:
    """rich Console settings for --color (auto: rich's own terminal and NO_COLOR checks)."""
    if choice == "always":
        return {"force_terminal": True}
    if choice == "never":
        return {"no_color": True, "color_system": None}
    return {}


def write_reports(
    report: ScanReport, outputs: list[Output], *, color: str | None, summary: Path | None
) -> None:
    from mlsec.render import render

    for output in outputs:
        if output.fmt is Format.table and output.path is None:
            from rich.console import Console

            from mlsec.render.table import build

            # Piped output (CI logs) gets a readable width rather than rich's 80 columns.
            wide = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
            Console(soft_wrap=False, width=wide, **_color(color)).print(build(report))
        else:
            write_output(render(report, output.fmt.value), output.path)
    if summary is not None:
        write_output(render(report, Format.markdown.value), summary, append=True)


def scan_command(**given: Any) -> int:
    """`mlsec scan`: the keyword names are the typer parameters of `mlsec.cli.app.scan`.

    Returns the exit code; user errors raise :class:`MlsecError`.
    """
    from mlsec.findings import Severity

    values = with_environment(given)
    if values["cache_dir"] is not None and values["no_cache"]:
        raise MlsecError("--cache-dir and --no-cache exclude each other")
    if values["quiet"] and values["verbose"]:
        raise MlsecError("-q and -v exclude each other")
    jobs = values["jobs"]
    if jobs is not None and jobs < 1:
        raise MlsecError(f"--jobs {jobs}: expected at least 1")
    fmt = Format(values["fmt"]) if values["fmt"] else None
    outputs = plan_outputs(fmt, values["output"])
    paths = values["paths"] or [Path(".")]
    wants_bom = any(o.fmt is Format.cyclonedx for o in outputs)
    if wants_bom and len(paths) > 1:
        raise MlsecError("a CycloneDX BOM describes one repository: give one PATH")
    fail_on, min_severity = values["fail_on"], values["min_severity"]
    report = run_scan(
        paths,
        values["config"],
        no_config=values["no_config"],
        show_progress=False if values["no_progress"] or values["quiet"] else None,
        offline=values["offline"],
        vuln_db=resolved(values["vuln_db"]),
        trusted_root=resolved(values["trusted_root"]),
        baseline=resolved(values["baseline"]),
        select=split_ids(values["select"]),
        ignore=split_ids(values["ignore"]),
        use_git=False if values["no_git"] else None,
        build_bom=True if wants_bom else None,
        min_severity=Severity(min_severity) if min_severity else None,
        category=values["category"],
        follow_symlinks=values["follow_symlinks"] or None,
        respect_gitignore=values["respect_gitignore"] or None,
        jobs=jobs,
        shard=parse_shard(values["shard"]),
        cache_dir=resolved(values["cache_dir"]),
        use_cache=False if values["no_cache"] else None,
        diff_ref=values["diff"],
    )
    if fail_on is not None:
        report = report._replace(fail_on=None if fail_on == "none" else Severity(fail_on))
    report = report._replace(verbosity=-1 if values["quiet"] else 1 if values["verbose"] else 0)
    write_reports(report, outputs, color=values["color"], summary=values["summary"])
    # The terminal table lists errors itself; -q keeps only what must be said.
    table_shown = any(o.fmt is Format.table and o.path is None for o in outputs)
    warn_errors(report if not (values["quiet"] or table_shown) else report._replace(errors=()))
    return report.exit_code
