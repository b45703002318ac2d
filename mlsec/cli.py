"""Command line: the typer app that defines every command, its options and its help.

The commands parse their flags and hand over to mlsec.commands (scan, bom) or the library.
`mlsec scan` with plain options does not even come here: mlsec/launch.py parses it from a
table generated out of this app (scripts/sync_cli.py), to start without importing typer.
Exit codes are in mlsec.commands.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlsec import __version__
from mlsec.commands import (
    EXIT_ERROR,
    fail,
    resolved,
    run_scan,
    scan_command,
    warn_errors,
    write_output,
)
from mlsec.errors import MlsecError

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
    raise typer.Exit(
        scan_command(
            path=path,
            fmt=fmt.value,
            output=output,
            fail_on=fail_on.value if fail_on else None,
            config=config,
            offline=offline,
            vuln_db=vuln_db,
            baseline=baseline,
            select=select,
            ignore=ignore,
            trusted_root=trusted_root,
            no_git=no_git,
            summary=summary,
        )
    )


@app.command("rules")
def list_rules(
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or markdown.")] = "table",
) -> None:
    """List every rule (id, severity, title)."""
    from mlsec.rules import load_rules

    try:
        rules = load_rules()
    except MlsecError as exc:
        fail(exc.diagnostic())
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
        fail(f"unknown format {fmt!r} for rules (use table, json or markdown)")
        raise typer.Exit(EXIT_ERROR)


class BomFormat(str, Enum):
    json = "json"
    xml = "xml"
    spdx3 = "spdx3"


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
    fmt: Annotated[
        BomFormat,
        typer.Option(
            "--format", "-f", help="json or xml (CycloneDX), or spdx3 (SPDX 3.0 JSON-LD)."
        ),
    ] = (BomFormat.json),
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
        report = run_scan(
            path,
            config,
            offline=offline,
            vuln_db=resolved(vuln_db),
            use_git=False if no_git else None,
            reproducible=True if reproducible else None,
            build_bom=True,
        )
        if fmt is BomFormat.spdx3:
            from mlsec.render.spdx3 import render_spdx3

            bom_text = render_spdx3(report)
        else:
            memo = ValidationMemo(default_cache_dir() / "bom-validated.json")
            bom_text = render_bom(report, fmt=fmt.value, spec_version=spec_version, memo=memo)
        write_output(bom_text, output)
        warn_errors(report)
    except MlsecError as exc:
        fail(exc.diagnostic())
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
        fail(exc.diagnostic())
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
        fail(exc.diagnostic())
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
        info = database_info(resolved(vuln_db))
    except MlsecError as exc:
        fail(exc.diagnostic())
        raise typer.Exit(EXIT_ERROR) from None
    _print_database(info)
