"""The typer app: every command, its options and its help.

The commands parse their flags and hand over to mlsec.cli.run (scan, bom) or the library;
they raise :class:`~mlsec.errors.MlsecError` and leave it to the one error boundary
(mlsec.cli.launch.run). `mlsec scan` with plain options does not even come here: launch.py
parses it from a table generated out of this app (scripts/sync_cli.py), to start without
importing typer. Exit codes are in mlsec.cli.run.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlsec import __version__
from mlsec.cli.outputs import Format
from mlsec.cli.run import resolved, run_scan, scan_command, warn_errors, write_output
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


class FailOn(str, Enum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"
    none = "none"


class MinSeverity(str, Enum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"
    info = "info"


class Color(str, Enum):
    auto = "auto"
    always = "always"
    never = "never"


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


# Options that several commands share (typer needs Optional on Python 3.10).
ConfigOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--config",
        help="Configuration file (default: the first .mlsec.toml, or pyproject.toml with "
        "[tool.mlsec], from PATH up to the repository root).",
    ),
]
NoConfigOption = Annotated[
    bool,
    typer.Option(
        "--no-config", help="Leave out configuration inside the scanned tree (the repository's)."
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
PathsArgument = Annotated[
    Optional[list[Path]],  # noqa: UP045
    typer.Argument(
        metavar="PATH...",
        help="Repositories, folders or files to scan (default: the current directory). "
        "Report paths are relative to the repository root (the git top level, else the "
        "working directory).",
        show_default=False,
    ),
]
SelectOption = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--select", help="Only these rule ids or prefixes (comma-separated)."),
]
IgnoreOption = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--ignore", help="Skip these rule ids or prefixes (comma-separated)."),
]

SCAN_HELP = """Scan repositories, folders or files and report findings.

Exit code 0: nothing at or above --fail-on; 1: at least one such finding; 2: mlsec could
not do its job (bad flags, unreadable path, invalid configuration, an analyzer that failed;
the report is still written where it could be); 130: interrupted.

Every option can also come from an environment variable named MLSEC_ and the option's name
(MLSEC_FAIL_ON=medium, MLSEC_OFFLINE=1, MLSEC_VULN_DB=..., MLSEC_FORMAT=sarif); flags
override the environment.
"""


@app.command(help=SCAN_HELP)
def scan(
    paths: PathsArgument = None,
    fmt: Annotated[
        Optional[Format],  # noqa: UP045
        typer.Option(
            "--format",
            "-f",
            help="Format on stdout (default: table), and of --output files without a known "
            "extension.",
        ),
    ] = None,
    output: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--output",
            "-o",
            help="Write a report to FILE (repeatable). One --output with --format gets that "
            "format (-f cyclonedx -o bom.json). Otherwise the format comes from the extension "
            "(.sarif, .json, .md, .cdx.json, .txt), else --format; FORMAT=FILE says it. "
            "Standard output then gets --format only when it is given and no file takes it.",
        ),
    ] = None,
    fail_on: Annotated[
        Optional[FailOn],  # noqa: UP045
        typer.Option(
            "--fail-on",
            help="Exit 1 when an active finding is at or above this severity (default: high, "
            "or the config file's fail-on). 'none' never fails on findings.",
        ),
    ] = None,
    min_severity: Annotated[
        Optional[MinSeverity],  # noqa: UP045
        typer.Option(
            "--min-severity",
            help="Report only findings at or above this severity (default: info); --fail-on "
            "stays the gate.",
        ),
    ] = None,
    config: ConfigOption = None,
    no_config: NoConfigOption = False,
    offline: OfflineOption = None,
    vuln_db: VulnDbOption = None,
    baseline: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--baseline",
            help="A previous JSON or SARIF report (`mlsec baseline create`): its findings stay "
            "in the report as suppressed; entries that no longer occur are reported.",
        ),
    ] = None,
    select: SelectOption = None,
    ignore: IgnoreOption = None,
    diff: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--diff",
            metavar="REF",
            help="Only files changed since this git revision (renames followed, untracked "
            "files included), plus what their checks need: the rest of a signed folder, the "
            "manifests that include a changed requirements file.",
        ),
    ] = None,
    category: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--category",
            metavar="ID",
            help="SARIF automationDetails.id, one per kind of scan of a repository "
            "(default: mlsec/).",
        ),
    ] = None,
    follow_symlinks: Annotated[
        bool,
        typer.Option("--follow-symlinks", help="Read symlinks that point outside the tree."),
    ] = False,
    respect_gitignore: Annotated[
        bool,
        typer.Option(
            "--respect-gitignore", help="Leave out files git ignores (they are listed as skipped)."
        ),
    ] = False,
    jobs: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--jobs",
            "-j",
            metavar="N",
            help="Processes analysing files at once, at most one per CPU (default: one per "
            "CPU; 1: none).",
        ),
    ] = None,
    shard: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--shard",
            metavar="K/N",
            help="Scan only the K-th of N deterministic parts of the file set (a signed "
            "folder stays whole); combine the reports with `mlsec merge`.",
        ),
    ] = None,
    cache_dir: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--cache-dir",
            metavar="DIR",
            help="Where hashes, database indexes, per-file results and the offline database "
            "are kept (default: mlsec in the user's cache directory).",
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Keep no cache: hash and index everything anew.")
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No progress and no notices on stderr."),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="List low and info findings in the table too."),
    ] = False,
    color: Annotated[
        Optional[Color],  # noqa: UP045
        typer.Option("--color", help="Colour in the terminal table (default: auto)."),
    ] = None,
    no_progress: Annotated[
        bool, typer.Option("--no-progress", help="No progress bars on stderr.")
    ] = False,
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
    raise typer.Exit(
        scan_command(
            paths=paths,
            fmt=fmt.value if fmt else None,
            output=output,
            fail_on=fail_on.value if fail_on else None,
            min_severity=min_severity.value if min_severity else None,
            config=config,
            no_config=no_config,
            offline=offline,
            vuln_db=vuln_db,
            baseline=baseline,
            select=select,
            ignore=ignore,
            diff=diff,
            category=category,
            follow_symlinks=follow_symlinks,
            respect_gitignore=respect_gitignore,
            jobs=jobs,
            shard=shard,
            cache_dir=cache_dir,
            no_cache=no_cache,
            quiet=quiet,
            verbose=verbose,
            color=color.value if color else None,
            no_progress=no_progress,
            trusted_root=trusted_root,
            no_git=no_git,
            summary=summary,
        )
    )


class RulesFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


@app.command("rules")
def list_rules(
    fmt: Annotated[RulesFormat, typer.Option("--format", "-f", help="Output format.")] = (
        RulesFormat.table
    ),
) -> None:
    """List every rule (id, severity, title)."""
    from mlsec.rules import load_rules

    rules = load_rules()
    if fmt is RulesFormat.json:
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
    elif fmt is RulesFormat.markdown:
        from mlsec.rules import rule_table_markdown

        typer.echo(rule_table_markdown(rules), nl=False)
    else:
        for r in rules.values():
            typer.echo(f"{r.id}  {r.severity.value:<8}  {r.title}")


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
    no_config: NoConfigOption = False,
    offline: OfflineOption = None,
    vuln_db: VulnDbOption = None,
    no_git: NoGitOption = False,
) -> None:
    """Write a CycloneDX ML-BOM (AI bill of materials) of a repository.

    Exit code 0 when the BOM was written (findings do not fail this command), 2 when it
    could not be produced.
    """
    from mlsec.render.cyclonedx import render_bom, report_memo

    report = run_scan(
        [path],
        config,
        no_config=no_config,
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
        memo = report_memo(report)
        bom_text = render_bom(report, fmt=fmt.value, spec_version=spec_version, memo=memo)
    write_output(bom_text, output)
    warn_errors(report)


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
    typer.echo(f"signed {len(signed.files)} file(s) of {signed.model_name}: {signed.signature}")


baseline_app = typer.Typer(
    name="baseline",
    help="Baselines: the findings a repository accepts today (`mlsec scan --baseline FILE`).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("create")
def baseline_create(
    paths: PathsArgument = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The baseline file to write (JSON).")
    ] = Path("mlsec-baseline.json"),
    config: ConfigOption = None,
    no_config: NoConfigOption = False,
    offline: OfflineOption = None,
    vuln_db: VulnDbOption = None,
    select: SelectOption = None,
    ignore: IgnoreOption = None,
    no_git: NoGitOption = False,
) -> None:
    """Scan and write every finding as a baseline.

    Later scans with --baseline FILE keep these findings in the report as suppressed and gate
    only on new ones. Exit code 0 when the baseline was written, 2 when it could not be.
    """
    from mlsec.cli.run import split_ids
    from mlsec.render import render

    report = run_scan(
        paths or [Path(".")],
        config,
        no_config=no_config,
        offline=offline,
        vuln_db=resolved(vuln_db),
        select=split_ids(select),
        ignore=split_ids(ignore),
        use_git=False if no_git else None,
    )
    write_output(render(report, Format.json.value), output)
    warn_errors(report)
    if report.incomplete:
        raise MlsecError(
            f"the scan was incomplete, so {output} may miss findings",
            hint="see 'errors' in the baseline file; fix them and create it again",
        )
    typer.echo(f"baseline of {len(report.findings)} finding(s) written to {output}", err=True)


@app.command("merge")
def merge(
    reports: Annotated[list[Path], typer.Argument(help="JSON or SARIF reports to combine.")],
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--output", "-o", help="Write the merged report here instead of stdout."),
    ] = None,
) -> None:
    """Combine the reports of several shards (or paths) into one.

    SARIF: one run per category (automationDetails.id), results and rules deduplicated.
    JSON: findings, errors and skipped files combined, the summary recounted. Shard reports
    (--shard K/N) merge only as the whole set of N. Exit code 2 when the reports cannot be
    merged or a shard was incomplete; for JSON reports 1 when the merged findings fail the
    reports' gate (SARIF carries no gate: 0).
    """
    import json

    from mlsec.merge import merge_files

    kind, data = merge_files(reports)
    write_output(json.dumps(data, indent=2) + "\n", output)
    if kind == "json":
        summary = data.get("summary", {})
        if summary.get("incomplete"):
            raise typer.Exit(2)
        if summary.get("failed"):
            raise typer.Exit(1)
    elif any(
        invocation.get("executionSuccessful") is False
        for run in data["runs"]
        for invocation in run.get("invocations") or ()
    ):
        raise typer.Exit(2)  # a shard that did not check everything: not a pass


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

    info = update_database(directory, url=url or OSV_PYPI_EXPORT, timeout=timeout)
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

    info = database_info(resolved(vuln_db))
    _print_database(info)
