"""Renderers: pure functions from a :class:`ScanReport` to text (no clock, no I/O).

Every renderer takes the report and keyword options (:data:`OPTIONS`); text from scanned
files goes through :mod:`mlsec.render.escape` for its format.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

from mlsec.findings import Finding, Severity
from mlsec.report import ScanReport

Renderer = Callable[..., str]

# Imported lazily: the CycloneDX renderer pulls in heavy libraries.
RENDERERS: dict[str, str] = {
    "table": "mlsec.render.table:render",
    "json": "mlsec.render.json:render",
    "sarif": "mlsec.render.sarif:render",
    "markdown": "mlsec.render.markdown:render",
    "cyclonedx": "mlsec.render.cyclonedx:render",
}
# The keyword options each renderer takes; :func:`render` drops the others, so a caller can
# pass the same options (``verbose=``, ``category=``) whatever the format.
OPTIONS: dict[str, frozenset[str]] = {
    "table": frozenset({"verbose", "width", "color"}),
    "markdown": frozenset({"verbose"}),
    "sarif": frozenset({"category"}),
}


def get_renderer(fmt: str) -> Renderer:
    module_name, _, func = RENDERERS[fmt].partition(":")
    renderer: Renderer = getattr(importlib.import_module(module_name), func)
    return renderer


def render(report: ScanReport, fmt: str, **options: Any) -> str:
    """``report`` in format ``fmt``. Options: ``verbose=True`` lists what the table and
    Markdown only count; ``category=`` is the SARIF ``automationDetails.id`` (default: the
    report's ``category``, else ``mlsec/``). Options a format does not take are ignored."""
    accepted = OPTIONS.get(fmt, frozenset())
    return get_renderer(fmt)(report, **{k: v for k, v in options.items() if k in accepted})


def location(finding: Finding) -> str:
    """``path[:line]`` plus ``!member`` and ``@offset`` where present, for human formats
    (raw text: escape it for the format)."""
    text = finding.path
    if finding.member:
        text += f"!{finding.member}"
    if finding.line:
        text += f":{finding.line}"
    if finding.offset is not None:
        text += f" @{finding.offset}"
    return text


class Listing(NamedTuple):
    """What a human format shows, in order: the gate first, then the rest."""

    verbose: bool  # the notes and suppressed findings are listed too
    gate: list[Finding]  # active findings at or above --fail-on (what fails the scan)
    findings: list[Finding]  # every active finding
    listed: list[Finding]  # active findings below the gate that are listed
    notes: int  # active findings below the gate counted, not listed (see is_note)
    suppressed: list[Finding]  # kept in the report, not gating

    @classmethod
    def of(cls, report: ScanReport, verbose: bool | None) -> Listing:
        """``verbose`` (default: the report's ``-v``) lists the notes too."""
        if verbose is None:
            verbose = report.verbosity > 0
        gate = report.failing()
        gate_ids = set(map(id, gate))
        findings = report.active()
        rest = [f for f in findings if id(f) not in gate_ids]
        listed = rest if verbose else [f for f in rest if not is_note(f)]
        notes = len(rest) - len(listed)
        return cls(verbose, gate, findings, listed, notes, report.suppressed_findings())


def counts(findings: list[Finding]) -> dict[str, int]:
    """Findings per severity, every severity present (most severe first)."""
    out = {s.value: 0 for s in Severity}
    for f in findings:
        out[f.severity.value] += 1
    return out


def is_note(finding: Finding) -> bool:
    """A finding the human formats count but list only when verbose: info findings, and the
    low documentation and provenance notes of the bill of materials (MLS3xx), which a large
    repository has per model file and which would bury what gates."""
    if finding.severity is Severity.INFO:
        return True
    return finding.severity is Severity.LOW and finding.rule_id.startswith("MLS3")


def plural(count: int, noun: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
