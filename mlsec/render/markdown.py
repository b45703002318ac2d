"""Markdown output for pull request comments and the GitHub job summary."""

from __future__ import annotations

from mlsec.findings import Severity
from mlsec.render import location
from mlsec.report import ScanReport

_ICON = {
    Severity.CRITICAL: "🛑",
    Severity.HIGH: "🔴",
    Severity.MEDIUM: "🟠",
    Severity.LOW: "🟡",
    Severity.INFO: "🔵",
}


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def render(report: ScanReport) -> str:
    counts = report.counts()
    active = report.active()
    suppressed = len(report.findings) - len(active)
    verdict = "❌ failed" if report.failing() else "✅ passed"
    fail_on = report.fail_on.value if report.fail_on else "none"
    lines = [
        "## mlsec scan",
        "",
        f"**{verdict}** (fail on: {fail_on}) · {report.files_scanned} files scanned · "
        f"{len(active)} findings · {suppressed} suppressed · {len(report.errors)} errors · "
        f"{len(report.skipped)} skipped",
        "",
        "| " + " | ".join(s.value for s in Severity) + " |",
        "|" + "---:|" * len(Severity),
        "| " + " | ".join(str(counts[s.value]) for s in Severity) + " |",
        "",
    ]
    if active:
        lines += ["| Severity | Rule | Location | Message |", "|---|---|---|---|"]
        for f in active:
            rule = report.rules[f.rule_id]
            lines.append(
                f"| {_ICON[f.severity]} {f.severity.value} | `{f.rule_id}` {_cell(rule.title)} "
                f"| `{_cell(location(f))}` | {_cell(f.message)} |"
            )
        lines.append("")
    else:
        lines += ["No findings.", ""]
    if report.errors:
        lines += [f"<details><summary>{len(report.errors)} errors</summary>", ""]
        lines += [f"- `{_cell(e.path)}`: {_cell(e.message)}" for e in report.errors]
        lines += ["", "</details>", ""]
    if report.skipped:
        lines += [f"<details><summary>{len(report.skipped)} skipped</summary>", ""]
        lines += [f"- `{_cell(s.path)}`: {_cell(s.reason)}" for s in report.skipped]
        lines += ["", "</details>", ""]
    return "\n".join(lines)
