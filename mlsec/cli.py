"""Command line: flags -> ScanOptions -> scan() -> renderer -> exit code.

Exit codes: 0 nothing at or above --fail-on, 1 at least one such finding, 2 mlsec could not
do its job (bad flags, unreadable PATH, invalid configuration, a crash).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from mlsec import __version__
from mlsec.errors import MlsecError

if TYPE_CHECKING:
    from mlsec.report import ScanReport

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2

app = typer.Typer(
    name="mlsec",
    help=(
        "DevSecOps scanner for machine learning repositories: unsafe model files, vulnerable "
        "dependencies, model signatures and an AI bill of materials. It never loads or runs "
        "what it scans."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    sarif = "sarif"
    cyclonedx = "cyclonedx"
    markdown = "markdown"


class FailOn(str, Enum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"
    none = "none"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlsec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """mlsec: security checks for ML repositories."""


def _split_ids(values: list[str] | None) -> tuple[str, ...] | None:
    if not values:
        return None
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip())


def _fail(message: str) -> None:
    typer.echo(f"mlsec: error: {message}", err=True)


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


def _write(text: str, output: Path | None, *, append: bool = False) -> None:
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


# Options that `scan` and `bom` share (typer needs Optional on Python 3.10).
ConfigOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--config",
        help="Configuration file (default: .mlsec.toml, else [tool.mlsec] in pyproject.toml, "
        "in the scanned directory).",
    ),
]
OfflineOption = Annotated[
    Optional[bool],  # noqa: UP045
    typer.Option("--offline/--online", help="Never use the network (default: online)."),
]
VulnDbOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--vuln-db",
        help="Local OSV vulnerability database (osv.dev PyPI all.zip or a directory of OSV "
        "JSON/YAML records) used instead of online services.",
    ),
]
NoGitOption = Annotated[
    bool, typer.Option("--no-git", help="Walk the file system even inside a git work tree.")
]


def _run_scan(path: Path, config: Path | None, **flags: Any) -> ScanReport:
    """Options from the config file and flags, then the scan, with progress on a terminal."""
    from mlsec.config import build_options
    from mlsec.scan import scan as run_scan

    show_progress = sys.stderr.isatty()
    options = build_options(path, config_file=config, show_progress=show_progress, **flags)
    with _progress(show_progress) as progress:
        return run_scan(options, progress=progress)


def _warn_errors(report: ScanReport) -> None:
    if report.errors:
        typer.echo(
            f"mlsec: {len(report.errors)} file(s) could not be fully scanned; "
            "see 'errors' in a JSON report",
            err=True,
        )


@app.command()
def scan(
    path: Annotated[
        Path, typer.Argument(help="Repository directory or single file to scan.")
    ] = Path("."),
    fmt: Annotated[
        OutputFormat,
        typer.Option("--format", "-f", help="Output format written to stdout or --output."),
    ] = OutputFormat.table,
    output: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option("--output", "-o", help="Write the report to this file instead of stdout."),
    ] = None,
    fail_on: Annotated[
        Optional[FailOn],  # noqa: UP045
        typer.Option(
            "--fail-on",
            help="Exit 1 when a finding is at or above this severity (default: high, or the "
            "config file's fail-on). 'none' never fails on findings.",
        ),
    ] = None,
    config: ConfigOption = None,
    offline: OfflineOption = None,
    vuln_db: VulnDbOption = None,
    baseline: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--baseline",
            help="A previous JSON or SARIF report: findings with the same fingerprint are "
            "suppressed.",
        ),
    ] = None,
    select: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--select", help="Only these rule ids or prefixes (comma-separated)."),
    ] = None,
    ignore: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--ignore", help="Skip these rule ids or prefixes (comma-separated)."),
    ] = None,
    trusted_root: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--trusted-root",
            help="Sigstore trusted root JSON for signature verification (default: the root "
            "bundled with sigstore-python, offline).",
        ),
    ] = None,
    no_git: NoGitOption = False,
    summary: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--summary",
            help='Also append a Markdown summary to this file (e.g. "$GITHUB_STEP_SUMMARY"), '
            "so one run gives both the report and the job summary.",
        ),
    ] = None,
) -> None:
    """Scan a repository or file and report findings.

    Exit code 0: nothing at or above --fail-on; 1: at least one such finding; 2: mlsec could
    not do its job (bad flags, unreadable path, invalid configuration).
    """
    from dataclasses import replace

    from mlsec.findings import Severity
    from mlsec.render import render

    try:
        report = _run_scan(
            path,
            config,
            offline=offline,
            vuln_db=vuln_db.resolve() if vuln_db else None,
            trusted_root=trusted_root.resolve() if trusted_root else None,
            baseline=baseline.resolve() if baseline else None,
            select=_split_ids(select),
            ignore=_split_ids(ignore),
            use_git=False if no_git else None,
            build_bom=True if fmt is OutputFormat.cyclonedx else None,
        )
        if fail_on is not None:
            fail_level = None if fail_on is FailOn.none else Severity(fail_on.value)
            report = replace(report, fail_on=fail_level)
        if fmt is OutputFormat.table and output is None:
            from rich.console import Console

            from mlsec.render.table import build

            # Piped output (CI logs) gets a readable width rather than rich's 80 columns.
            wide = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
            Console(soft_wrap=False, width=wide).print(build(report))
        else:
            _write(render(report, fmt.value), output)
            _warn_errors(report)
        if summary is not None:
            _write(render(report, "markdown"), summary, append=True)
    except MlsecError as exc:
        _fail(exc.diagnostic())
        raise typer.Exit(EXIT_ERROR) from None
    raise typer.Exit(report.exit_code)


@app.command("rules")
def list_rules(
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or markdown.")] = "table",
) -> None:
    """List every rule (id, severity, title)."""
    from mlsec.rules import load_rules

    try:
        rules = load_rules()
    except MlsecError as exc:
        _fail(exc.diagnostic())
        raise typer.Exit(EXIT_ERROR) from None
    if fmt == "json":
        import json

        data = [
            {
                "id": r.id,
                "name": r.name,
                "severity": r.severity.value,
                "title": r.title,
                "description": r.description,
                "remediation": r.remediation,
                "references": list(r.references),
            }
            for r in rules.values()
        ]
        typer.echo(json.dumps(data, indent=2))
    elif fmt == "markdown":
        from mlsec.rules import rule_table_markdown

        typer.echo(rule_table_markdown(rules), nl=False)
    elif fmt == "table":
        for r in rules.values():
            typer.echo(f"{r.id}  {r.severity.value:<8}  {r.title}")
    else:
        _fail(f"unknown format {fmt!r} for rules (use table, json or markdown)")
        raise typer.Exit(EXIT_ERROR)


class BomFormat(str, Enum):
    json = "json"
    xml = "xml"


@app.command("bom")
def bom(
    path: Annotated[Path, typer.Argument(help="Repository directory or model file.")] = Path("."),
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--output", "-o", help="Write the BOM to this file instead of stdout."),
    ] = None,
    spec_version: Annotated[
        str, typer.Option("--spec-version", help="CycloneDX specification version (1.6 or 1.5).")
    ] = "1.6",
    fmt: Annotated[BomFormat, typer.Option("--format", "-f", help="json or xml.")] = (
        BomFormat.json
    ),
    reproducible: Annotated[
        bool,
        typer.Option(
            "--reproducible",
            help="Byte-identical output for the same repository: serial number from the "
            "content, timestamp from SOURCE_DATE_EPOCH (else the HEAD commit time). Also on "
            "when SOURCE_DATE_EPOCH is set.",
        ),
    ] = False,
    config: ConfigOption = None,
    offline: OfflineOption = None,
    vuln_db: VulnDbOption = None,
    no_git: NoGitOption = False,
) -> None:
    """Write a CycloneDX ML-BOM (AI bill of materials) of a repository.

    Exit code 0 when the BOM was written (findings do not fail this command), 2 when it
    could not be produced.
    """
    from mlsec.hashing import default_cache_dir
    from mlsec.render.cyclonedx import ValidationMemo, render_bom

    try:
        report = _run_scan(
            path,
            config,
            offline=offline,
            vuln_db=vuln_db.resolve() if vuln_db else None,
            use_git=False if no_git else None,
            reproducible=True if reproducible else None,
            build_bom=True,
        )
        memo = ValidationMemo(default_cache_dir() / "bom-validated.json")
        _write(render_bom(report, fmt=fmt.value, spec_version=spec_version, memo=memo), output)
        _warn_errors(report)
    except MlsecError as exc:
        _fail(exc.diagnostic())
        raise typer.Exit(EXIT_ERROR) from None


@app.command("sign")
def sign_command(
    path: Annotated[Path, typer.Argument(help="Model folder (every file in it) or model file.")],
    key: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--key", help="Elliptic-curve private key (PEM, P-256/384/521)."),
    ] = None,
    certificate: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--certificate", help="Signing certificate (PEM) for --key."),
    ] = None,
    certificate_chain: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Option("--certificate-chain", help="Intermediate/root certificates (PEM)."),
    ] = None,
    keyless: Annotated[
        bool,
        typer.Option("--keyless", help="Sigstore keyless signing (needs network and OIDC)."),
    ] = False,
    identity_token: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--identity-token", help="OIDC identity token for --keyless."),
    ] = None,
    password_env: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--password-env", help="Environment variable holding the key password."),
    ] = None,
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--output", "-o", help="Signature file (default: model.sig in the folder)."),
    ] = None,
    ignore: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--ignore", help="Globs (relative to the folder) to leave unsigned."),
    ] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Never use the network.")] = False,
) -> None:
    """Sign a model with an OpenSSF model-signing signature (model.sig).

    The signature verifies with `mlsec scan` (given a [signatures] policy) and with the
    model-signing tool.
    """
    import os

    from mlsec.signatures.sign import sign_model

    try:
        password = None
        if password_env:
            value = os.environ.get(password_env)
            if value is None:
                raise MlsecError(f"environment variable {password_env} is not set")
            password = value.encode("utf-8")
        signed = sign_model(
            path,
            key=key,
            password=password,
            certificate=certificate,
            chain=tuple(certificate_chain or ()),
            keyless=keyless,
            identity_token=identity_token,
            offline=offline,
            output=output,
            ignore=tuple(ignore or ()),
        )
    except MlsecError as exc:
        _fail(exc.diagnostic())
        raise typer.Exit(EXIT_ERROR) from None
    typer.echo(f"signed {len(signed.files)} file(s) of {signed.model_name}: {signed.signature}")


db_app = typer.Typer(
    name="db",
    help="The offline vulnerability database (osv.dev's PyPI export) used by --offline.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(db_app, name="db")


def _print_database(info: object) -> None:
    from mlsec.deps.osv import DatabaseInfo

    assert isinstance(info, DatabaseInfo)
    age = info.age_days()
    typer.echo(f"database:  {info.path} ({info.kind})")
    typer.echo(f"records:   {info.records} advisories for {info.packages} packages")
    if info.bad_records:
        typer.echo(f"skipped:   {info.bad_records} malformed record(s)")
    if info.date is not None:
        typer.echo(f"date:      {info.date:%Y-%m-%d %H:%M} UTC ({int(age or 0)} days old)")
    if info.sha256:
        typer.echo(f"sha256:    {info.sha256}")
    if info.source_url:
        typer.echo(f"source:    {info.source_url}")


@db_app.command("update")
def db_update(
    directory: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--dir", help="Where to keep the database (default: the mlsec cache)."),
    ] = None,
    url: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--url", help="Export to download (default: osv.dev's PyPI all.zip)."),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Network timeout, seconds.")] = 60,
) -> None:
    """Download osv.dev's PyPI advisories for offline audits (`mlsec scan --offline`)."""
    from mlsec.deps.database import OSV_PYPI_EXPORT, update_database

    try:
        info = update_database(directory, url=url or OSV_PYPI_EXPORT, timeout=timeout)
    except MlsecError as exc:
        _fail(exc.diagnostic())
        raise typer.Exit(EXIT_ERROR) from None
    _print_database(info)


@db_app.command("info")
def db_info(
    vuln_db: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--vuln-db", help="A database to describe (default: the cached one)."),
    ] = None,
) -> None:
    """Describe the offline vulnerability database: records, date, checksum."""
    from mlsec.deps.database import database_info

    try:
        info = database_info(vuln_db.resolve() if vuln_db else None)
    except MlsecError as exc:
        _fail(exc.diagnostic())
        raise typer.Exit(EXIT_ERROR) from None
    _print_database(info)


def main() -> None:
    """Console entry point: any unexpected exception is a crash (exit 2), not a traceback."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        _fail("interrupted")
        sys.exit(130)
    except Exception as exc:  # last line of defence: a bug in mlsec
        _fail(f"internal error: {type(exc).__name__}: {exc} (please report this)")
        sys.exit(EXIT_ERROR)
