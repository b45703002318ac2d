"""Terminal output: findings grouped by severity (rich)."""

from __future__ import annotations

import io

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from mlsec.findings import Severity
from mlsec.render import location
from mlsec.report import ScanReport

STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def build(report: ScanReport) -> Group:
    parts: list[Table | Text] = []
    active = report.active()
    suppressed = len(report.findings) - len(active)
    for severity in Severity:
        group = [f for f in active if f.severity is severity]
        if not group:
            continue
        table = Table(
            title=Text(f"{severity.value.upper()} ({len(group)})", style=STYLE[severity]),
            title_justify="left",
            box=box.SIMPLE_HEAD,
            expand=False,
        )
        table.add_column("Rule", no_wrap=True)
        table.add_column("Location", overflow="fold")
        table.add_column("Message", overflow="fold")
        for f in group:
            table.add_row(f.rule_id, location(f), f.message)
        parts.append(table)
    if not active:
        parts.append(Text("No findings.", style="green"))
    for e in report.errors:
        parts.append(Text(f"error: {e.path}: {e.message}", style="red"))
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
    verdict = (
        Text("FAILED", style="bold red") if report.failing() else Text("passed", style="green")
    )
    fail_on = report.fail_on.value if report.fail_on else "none"
    parts.append(
        Text.assemble(
            f"\n{report.files_scanned} files scanned, {len(active)} findings",
            f" ({counts})" if counts else "",
            f", {suppressed} suppressed" if suppressed else "",
            f", {len(report.errors)} errors, {len(report.skipped)} skipped. ",
            f"fail-on {fail_on}: ",
            verdict,
        )
    )
    return Group(*parts)


def render(report: ScanReport, *, width: int = 120, color: bool = False) -> str:
    console = Console(
        width=width, record=True, force_terminal=color, no_color=not color, file=io.StringIO()
    )
    console.print(build(report))
    return console.export_text(styles=color)
