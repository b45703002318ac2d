"""`mlsec merge`: one report from the JSON or SARIF reports of several shards or paths.

SARIF runs are merged per ``automationDetails.id`` (one run per category, as GitHub code
scanning expects); results are deduplicated by fingerprint and location, rules by id (result
``ruleIndex`` values are renumbered). mlsec JSON reports are concatenated the same way and
their summary recounted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlsec.baseline import SARIF_FINGERPRINT, read_report
from mlsec.errors import MlsecError
from mlsec.findings import Severity

_HINT = "merge reports written by `mlsec scan --format json` or `--format sarif`"


def _kind(data: Any, path: Path) -> str:
    if isinstance(data, dict) and isinstance(data.get("runs"), list):
        return "sarif"
    if isinstance(data, dict) and isinstance(data.get("findings"), list):
        return "json"
    raise MlsecError(f"{path} is neither an mlsec JSON nor a SARIF report", hint=_HINT)


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _location_key(result: dict[str, Any]) -> str:
    locations = _dicts(result.get("locations"))
    physical = locations[0].get("physicalLocation", {}) if locations else {}
    if not isinstance(physical, dict):
        return ""
    artifact = physical.get("artifactLocation", {})
    region = physical.get("region", {})
    uri = artifact.get("uri", "") if isinstance(artifact, dict) else ""
    line = region.get("startLine", "") if isinstance(region, dict) else ""
    return f"{uri}:{line}"


def _merge_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    merged = dict(runs[0])
    driver = dict(merged.get("tool", {}).get("driver", {}))
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    notifications: list[Any] = []
    successful = True
    for run in runs:
        run_rules = _dicts(run.get("tool", {}).get("driver", {}).get("rules"))
        for rule in run_rules:
            rules.setdefault(str(rule.get("id")), rule)
        for result in _dicts(run.get("results")):
            prints = result.get("partialFingerprints", {})
            fingerprint = str(prints.get(SARIF_FINGERPRINT, "")) if isinstance(prints, dict) else ""
            key = (str(result.get("ruleId")), fingerprint, _location_key(result))
            if key not in seen:
                seen.add(key)
                results.append(dict(result))
        for invocation in _dicts(run.get("invocations")):
            successful = successful and invocation.get("executionSuccessful", True) is not False
            for note in invocation.get("toolExecutionNotifications", []) or []:
                if note not in notifications:
                    notifications.append(note)
    order = sorted(rules)
    index = {rule_id: i for i, rule_id in enumerate(order)}
    for result in results:
        if str(result.get("ruleId")) in index:
            result["ruleIndex"] = index[str(result.get("ruleId"))]
    driver["rules"] = [rules[r] for r in order]
    merged["tool"] = {**merged.get("tool", {}), "driver": driver}
    merged["results"] = results
    merged["invocations"] = [
        {"executionSuccessful": successful, "toolExecutionNotifications": notifications}
    ]
    merged.pop("properties", None)  # per-run summaries no longer add up
    return merged


def merge_sarif(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    by_category: dict[str, list[dict[str, Any]]] = {}
    for report in reports:
        for run in _dicts(report.get("runs")):
            details = run.get("automationDetails", {})
            category = str(details.get("id", "")) if isinstance(details, dict) else ""
            by_category.setdefault(category, []).append(run)
    out = dict(reports[0])
    out["runs"] = [_merge_runs(runs) for runs in by_category.values()]
    return out


def merge_json(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out = dict(reports[0])
    findings: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for report in reports:
        for finding in _dicts(report.get("findings")):
            key = (finding.get("fingerprint"), finding.get("line"), finding.get("offset"))
            if key not in seen:
                seen.add(key)
                findings.append(finding)
    out["findings"] = findings
    for part in ("errors", "skipped"):
        items: list[dict[str, Any]] = []
        for report in reports:
            items.extend(i for i in _dicts(report.get(part)) if i not in items)
        out[part] = items
    out.pop("facts", None)  # facts of different shards do not merge
    active = [f for f in findings if not f.get("suppressions")]
    counted = Counter(str(f.get("severity")) for f in active)
    summaries: list[dict[str, Any]] = [
        summary for r in reports if isinstance(summary := r.get("summary"), dict)
    ]
    fail_on = str(summaries[0].get("fail_on", "high")) if summaries else "high"
    gate = Severity.parse(fail_on).rank if fail_on != "none" else None
    ranks = {s.value: s.rank for s in Severity}
    out["summary"] = {
        **(summaries[0] if summaries else {}),
        "files_scanned": sum(int(s.get("files_scanned", 0) or 0) for s in summaries),
        "findings": len(active),
        "by_severity": {s.value: counted.get(s.value, 0) for s in Severity},
        "suppressed": len(findings) - len(active),
        "errors": len(out["errors"]),
        "skipped": len(out["skipped"]),
        "failed": gate is not None
        and any(ranks.get(str(f.get("severity")), 0) >= gate for f in active),
        "incomplete": any(bool(s.get("incomplete")) for s in summaries),
    }
    return out


def merge_files(paths: Sequence[Path]) -> tuple[str, dict[str, Any]]:
    """The kind ("json" or "sarif") and merged data of ``paths`` (all of one kind)."""
    if not paths:
        raise MlsecError("nothing to merge", hint=_HINT)
    loaded = [(p, read_report(p, "report", _HINT)) for p in paths]
    kinds = {_kind(data, p) for p, data in loaded}
    if len(kinds) > 1:
        raise MlsecError("cannot merge JSON and SARIF reports together", hint=_HINT)
    kind = kinds.pop()
    reports = [data for _, data in loaded]
    return kind, merge_sarif(reports) if kind == "sarif" else merge_json(reports)
