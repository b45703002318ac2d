"""Renderers: pure functions from a :class:`ScanReport` to text (no clock, no I/O)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from mlsec.findings import Finding
from mlsec.report import ScanReport

Renderer = Callable[[ScanReport], str]

# Imported lazily: the CycloneDX renderer pulls in heavy libraries.
RENDERERS: dict[str, str] = {
    "table": "mlsec.render.table:render",
    "json": "mlsec.render.json:render",
    "sarif": "mlsec.render.sarif:render",
    "markdown": "mlsec.render.markdown:render",
    "cyclonedx": "mlsec.render.cyclonedx:render",
}


def get_renderer(fmt: str) -> Renderer:
    module_name, _, func = RENDERERS[fmt].partition(":")
    renderer: Renderer = getattr(importlib.import_module(module_name), func)
    return renderer


def render(report: ScanReport, fmt: str) -> str:
    return get_renderer(fmt)(report)


def location(finding: Finding) -> str:
    """``path[:line]`` plus ``!member`` and ``@offset`` where present, for human formats."""
    text = finding.path
    if finding.member:
        text += f"!{finding.member}"
    if finding.line:
        text += f":{finding.line}"
    if finding.offset is not None:
        text += f" @{finding.offset}"
    return text
