"""JSON output (contract: DESIGN.md; schema: schemas/mlsec-report.schema.json).

``schema_version`` changes its major number when a field is removed or changes meaning, its
minor number when fields are added. Every string is made valid for strict JSON parsers
(:func:`mlsec.render.escape.json_safe`: lone surrogates from undecodable file names).
"""

from __future__ import annotations

import json
from typing import Any

from mlsec.render.escape import json_safe
from mlsec.report import ScanReport

SCHEMA_VERSION = "1.0"
SCHEMA_URI = "https://github.com/mlsec-dev/mlsec/blob/main/schemas/mlsec-report.schema.json"


def to_data(report: ScanReport) -> dict[str, Any]:
    # Suppressed findings stay in "findings" (with their "suppressions"); the summary counts
    # them.
    summary = report.summary()
    data: dict[str, Any] = {
        "$schema": SCHEMA_URI,
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "mlsec", "version": report.tool_version},
        "root": report.root,
        "findings": [f.to_dict() for f in report.findings],
        "errors": [e.to_dict() for e in report.errors],
        "skipped": [s.to_dict() for s in report.skipped],
        "summary": summary,
    }
    for name, facts in sorted(report.facts.items()):
        to_json = getattr(facts, "to_json", None)
        if callable(to_json):
            data.setdefault("facts", {})[name] = to_json()
    safe: dict[str, Any] = json_safe(data)
    return safe


def render(report: ScanReport) -> str:
    return json.dumps(to_data(report), indent=2, sort_keys=False) + "\n"
