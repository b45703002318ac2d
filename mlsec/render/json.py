"""JSON output (contract: DESIGN.md; schema: schemas/mlsec-report.schema.json).

``schema_version`` changes its major number when a field is removed or changes meaning, its
minor number when fields are added. Every string is made valid for strict JSON parsers
(:func:`mlsec.render.escape.json_safe`: lone surrogates from undecodable file names).
"""

from __future__ import annotations

import json
import re
from typing import Any

from mlsec.render.escape import json_safe
from mlsec.report import ScanReport

SCHEMA_VERSION = "1.1"  # 1.1: summary.shard
SCHEMA_URI = "https://github.com/mlsec-dev/mlsec/blob/main/schemas/mlsec-report.schema.json"


def to_data(report: ScanReport) -> dict[str, Any]:
    """The report as JSON-ready data, every string valid for strict parsers."""
    safe: dict[str, Any] = json_safe(_data(report))
    return safe


def _data(report: ScanReport) -> dict[str, Any]:
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
    return data


# A surrogate written as an escape (json.dumps writes non-ASCII as \uXXXX): a lone one from an
# undecodable file name, or half of a pair for a character beyond the BMP.
_SURROGATE_ESCAPE = re.compile(r"\\ud[89a-f]")


def render(report: ScanReport) -> str:
    """The report, one top-level key per line and one finding (error, skipped file) per line.

    Deeper values are written compactly by the C encoder: ``json.dumps(indent=2)`` falls back
    to the pure-Python encoder, which for 30,000 findings cost 2 s and 440 MB more
    (``python benchmarks/bench_deps.py``, the 30,000-pin case). The data is written as it is
    first, and made safe (:func:`json_safe`) only when the text shows a surrogate: the walk
    through every string cost more than the writing (1,000 findings: 18 -> 11 ms)."""
    data = _data(report)
    try:
        text = _dump(data)
    except (TypeError, ValueError):  # a key json.dumps does not take: json_safe makes it one
        text = ""
    if not text or _SURROGATE_ESCAPE.search(text):
        text = _dump(json_safe(data))
    return text + "\n"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


def _dump(data: dict[str, Any]) -> str:
    lines = ["{"]
    items = list(data.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        head = f"  {_compact(key)}: "
        if isinstance(value, list) and value:
            body = ",\n".join(f"    {_compact(v)}" for v in value)
            lines.append(f"{head}[\n{body}\n  ]{comma}")
        elif isinstance(value, dict) and value:
            body = ",\n".join(f"    {_compact(k)}: {_compact(v)}" for k, v in value.items())
            lines.append(f"{head}{{\n{body}\n  }}{comma}")
        else:
            lines.append(f"{head}{_compact(value)}{comma}")
    lines.append("}")
    return "\n".join(lines)
