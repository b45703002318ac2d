"""Markdown output for pull request comments and the GitHub job summary.

Scanned text goes through :func:`mlsec.render.escape.markdown`: no HTML, link, image,
@mention or table break from a file name or a pickle string reaches the page.
"""

from __future__ import annotations

from mlsec.findings import Finding, Severity
from mlsec.render import (
    Listing,
    counts,
    location,
    plural,
)
from mlsec.render.escape import markdown as md
from mlsec.report import ScanReport

# GitHub keeps at most 1 MiB of job summary per step and fails the step beyond: a section
# lists this many rows, then says how many more the SARIF and JSON reports hold.
MAX_ROWS = 200

_ICON = {
    Severity.CRITICAL: "🛑",
    Severity.HIGH: "🔴",
    Severity.MEDIUM: "🟠",
    Severity.LOW: "🟡",
    Severity.INFO: "🔵",
}


def _rows(report: ScanReport, findings: list[Finding], *, reason: bool = False) -> list[str]:
    head = "| Severity | Rule | Location | Message |"
    rule = "|---|---|---|---|"
    if reason:
        head, rule = head + " Suppressed because |", rule + "---|"
    lines = [head, rule]
    ordered = sorted(findings, key=Finding.sort_key)
    for f in ordered[:MAX_ROWS]:
        title = report.rules[f.rule_id].title if f.rule_id in report.rules else ""
        row = (
            f"| {_ICON[f.severity]} {f.severity.value} | `{f.rule_id}` {md(title)} "
            f"| {md(location(f))} | {md(f.message)} |"
        )
        if reason:
            row += " " + "; ".join(md(f"{s.justification} ({s.source})") for s in f.suppressions)
            row += " |"
        lines.append(row)
    lines.append("")
    if len(ordered) > MAX_ROWS:
        lines += [f"{len(ordered) - MAX_ROWS} more are listed in the SARIF and JSON reports.", ""]
    return lines


def _details(summary: str, items: list[str]) -> list[str]:
    shown = items[:MAX_ROWS]
    if len(items) > MAX_ROWS:
        shown.append(f"- {len(items) - MAX_ROWS} more are listed in the JSON report.")
    return [f"<details><summary>{summary}</summary>", "", *shown, "", "</details>", ""]


def render(report: ScanReport, *, verbose: bool | None = None) -> str:
    verbose, gate, findings, listed, notes, hidden = Listing.of(report, verbose)
    by_severity = counts(findings)
    fail_on = report.fail_on.value if report.fail_on else "none"
    if report.fail_on is None:
        verdict = "⚪ gate off"
    elif gate:
        verdict = f"❌ failed: {len(gate)} at or above {fail_on}"
    else:
        verdict = f"✅ passed: nothing at or above {fail_on}"
    if report.incomplete:
        verdict += " · ⚠️ incomplete: an analyzer failed (exit 2)"
    lines = [
        "## mlsec scan",
        "",
        f"**{verdict}** (fail on: {fail_on}) · {report.files_scanned} files scanned · "
        f"{len(findings)} findings · {len(report.suppressed_findings())} suppressed · "
        f"{len(report.errors)} errors · {len(report.skipped)} skipped",
        "",
        "| " + " | ".join(s.value for s in Severity) + " | suppressed |",
        "|" + "---:|" * (len(Severity) + 1),
        "| "
        + " | ".join(str(by_severity[s.value]) for s in Severity)
        + f" | {len(report.suppressed_findings())} |",
        "",
    ]
    if gate:
        lines += ["### Failing the scan", "", *_rows(report, gate)]
    if listed:
        lines += ["### Other findings" if gate else "### Findings", "", *_rows(report, listed)]
    if not findings:
        lines += ["No findings.", ""]
    if notes:
        lines += [f"{plural(notes, 'info or documentation note')} not listed here.", ""]
    if hidden:
        if verbose:
            lines += _details(f"{len(hidden)} suppressed", _rows(report, hidden, reason=True))
        else:
            lines += [
                f"{plural(len(hidden), 'suppressed finding')} (listed in the JSON and SARIF).",
                "",
            ]
    if report.errors:
        items = [f"- {md(e.path)}: {md(e.message)}" for e in report.errors]
        lines += _details(f"{len(report.errors)} errors", items)
    if report.skipped:
        items = [f"- {md(s.path)}: {md(s.reason)}" for s in report.skipped]
        lines += _details(f"{len(report.skipped)} skipped", items)
    return "\n".join(lines)
