"""Terminal output (rich): the verdict first, then what gates, then the rest.

Every cell and line is a :class:`rich.text.Text` built from escaped plain text
(:func:`mlsec.render.escape.terminal`), never a markup string: a file named ``[/close].pkl``
or a pickle argument ``[link=...]`` renders literally.
"""

from __future__ import annotations

import io

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from mlsec.findings import Finding, Severity
from mlsec.render import (
    Listing,
    counts,
    location,
    plural,
)
from mlsec.render.escape import terminal
from mlsec.report import ScanReport

STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def _table(title: str, style: str, findings: list[Finding], *, reason: bool = False) -> Table:
    table = Table(
        title=Text(title, style=style),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        expand=False,
    )
    table.add_column("Severity", no_wrap=True)
    table.add_column("Rule", no_wrap=True)
    table.add_column("Location", overflow="fold")
    table.add_column("Message", overflow="fold")
    if reason:
        table.add_column("Suppressed because", overflow="fold")
    for f in sorted(findings, key=Finding.sort_key):
        cells = [
            Text(f.severity.value.upper(), style=STYLE[f.severity]),
            Text(f.rule_id),
            Text(terminal(location(f))),
            Text(terminal(f.message)),
        ]
        if reason:
            cells.append(
                Text("; ".join(terminal(f"{s.justification} ({s.source})") for s in f.suppressions))
            )
        table.add_row(*cells)
    return table


def _verdict(report: ScanReport, gate: list[Finding]) -> Text:
    if report.fail_on is None:
        return Text("Gate off (fail-on none): nothing fails the scan.", style="bold")
    level = report.fail_on.value
    if gate:
        return Text.assemble(
            ("FAILED", "bold red"),
            f": {plural(len(gate), 'finding')} at or above {level} (fail-on {level}).",
        )
    return Text.assemble(("passed", "bold green"), f": no findings at or above {level}.")


def build(report: ScanReport, *, verbose: bool | None = None) -> Group:
    """The report as rich renderables; ``verbose`` (default: the report's ``-v``) also lists
    notes and suppressed findings."""
    verbose, gate, findings, listed, notes, hidden = Listing.of(report, verbose)

    parts: list[Table | Text] = []
    if report.incomplete:  # first: this, not the findings, decides the exit code (2)
        parts.append(
            Text(
                "INCOMPLETE: an analyzer failed; what it checks was not checked (exit 2).",
                style="bold red",
            )
        )
    parts.append(_verdict(report, gate))
    if gate:
        parts.append(_table("Failing the scan", "bold red", gate))
    if listed:
        title = "Other findings" if gate else "Findings"
        parts.append(_table(f"{title} (below fail-on)" if report.fail_on else title, "", listed))
    if verbose and hidden:
        parts.append(_table("Suppressed (not gating)", "dim", hidden, reason=True))
    if not findings:
        parts.append(Text("No findings.", style="green"))
    for e in report.errors:
        parts.append(Text(f"error: {terminal(e.path)}: {terminal(e.message)}", style="red"))

    by_severity = ", ".join(f"{n} {s}" for s, n in counts(findings).items() if n)
    tail = [f"{plural(report.files_scanned, 'file')} scanned, {plural(len(findings), 'finding')}"]
    if by_severity:
        tail.append(f" ({by_severity})")
    tail.append(f", {plural(len(report.errors), 'error')}, {len(report.skipped)} skipped")
    total_suppressed = len(report.suppressed_findings())
    if total_suppressed:
        tail.append(f", {total_suppressed} suppressed")
    tail.append(".")
    if notes:
        tail.append(f" {plural(notes, 'info or documentation note')} not listed (-v lists them).")
    if hidden and not verbose:
        tail.append(" Suppressed findings are listed with -v and in JSON and SARIF.")
    parts.append(Text.assemble("\n" + "".join(tail) + " ", _verdict(report, gate)))
    return Group(*parts)


def render(
    report: ScanReport, *, width: int = 120, color: bool = False, verbose: bool | None = None
) -> str:
    console = Console(
        width=width, record=True, force_terminal=color, no_color=not color, file=io.StringIO()
    )
    console.print(build(report, verbose=verbose))
    return console.export_text(styles=color)
