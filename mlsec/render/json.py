"""JSON output (contract: DESIGN.md)."""

from __future__ import annotations

import json
from typing import Any

from mlsec.report import ScanReport


def to_data(report: ScanReport) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tool": {"name": "mlsec", "version": report.tool_version},
        "root": report.root,
        "findings": [f.to_dict() for f in report.findings],
        "errors": [e.to_dict() for e in report.errors],
        "skipped": [s.to_dict() for s in report.skipped],
        "summary": report.summary(),
    }
    for name, facts in sorted(report.facts.items()):
        to_json = getattr(facts, "to_json", None)
        if callable(to_json):
            data.setdefault("facts", {})[name] = to_json()
    return data


def render(report: ScanReport) -> str:
    return json.dumps(to_data(report), indent=2, sort_keys=False) + "\n"
