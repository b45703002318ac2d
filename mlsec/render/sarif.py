"""SARIF 2.1.0 output following GitHub code scanning conventions (contract: DESIGN.md).

- Locations: ``artifactLocation.uri`` is the finding's repository-relative path,
  percent-encoded from its bytes, against ``%SRCROOT%`` (declared in
  ``originalUriBaseIds``). A finding with a line has a line region; one without (a binary
  model file, a whole manifest) has none: claiming line 1 makes upload-sarif hash binary
  weights line by line, and points reviewers at nothing.
- Results are what the repository contains; rules marked ``notice = true`` (notes about the
  scan itself) and scan errors are ``invocations[0].toolExecutionNotifications``, so they
  never stand as code-scanning alerts. ``executionSuccessful`` is false when an analyzer
  failed.
- Suppressed findings are results with ``suppressions`` (kind ``inSource`` or ``external``,
  status ``accepted``, the justification): code scanning shows them as dismissed.
- ``security-severity``: per rule from its severity; per result from the worst CVSS base
  score of the finding's advisories when it has some (dependency findings), else from the
  finding's severity.
- Text from scanned files goes through :func:`mlsec.render.escape.sarif_message` (messages)
  and :func:`mlsec.render.escape.json_safe` (everything).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from mlsec.findings import Finding, ScanError, Severity
from mlsec.render import location
from mlsec.render.escape import json_safe, sarif_message, uri_path
from mlsec.report import ScanReport
from mlsec.rules import Rule

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT_KEY = "mlsecFingerprint/v1"
SRCROOT = "%SRCROOT%"
DEFAULT_CATEGORY = "mlsec/"
INFORMATION_URI = "https://github.com/mlsec-dev/mlsec"

LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub maps security-severity to critical (>= 9.0), high (7.0-8.9), medium (4.0-6.9), low.
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def _descriptor(rule: Rule) -> dict[str, Any]:
    refs = "\n".join(f"- {r}" for r in rule.references)
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description},
        "help": {
            "text": f"{rule.description}\n\nRemediation: {rule.remediation}",
            "markdown": (
                f"**{rule.title}**\n\n{rule.description}\n\n**Remediation:** "
                f"{rule.remediation}\n\n**References:**\n{refs}"
            ),
        },
        "helpUri": rule.doc_url,
        "defaultConfiguration": {"level": LEVEL[rule.severity]},
        "properties": {
            "tags": list(rule.tags),
            "security-severity": SECURITY_SEVERITY[rule.severity],
            "precision": "high",
        },
    }


def _is_repository(path: str) -> bool:
    return path in ("", ".")


def _location(path: str, line: int | None = None) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": uri_path(path), "uriBaseId": SRCROOT}}
    if line:
        physical["region"] = {"startLine": line}
    return {"physicalLocation": physical}


def cvss_score(finding: Finding) -> float | None:
    """The worst CVSS base score among the finding's advisories (``details["advisories"]``,
    as the dependency analyzer writes them), if any has one."""
    advisories = finding.details.get("advisories") if finding.details else None
    scores: list[float] = []
    if isinstance(advisories, (list, tuple)):
        for advisory in advisories:
            if isinstance(advisory, Mapping):
                score = advisory.get("cvss_score")
                if isinstance(score, (int, float)) and 0 <= score <= 10:
                    scores.append(float(score))
    return max(scores) if scores else None


def security_severity(finding: Finding) -> str:
    score = cvss_score(finding)
    return f"{score:.1f}" if score is not None else SECURITY_SEVERITY[finding.severity]


def _message(finding: Finding) -> str:
    text = finding.message
    if finding.member or finding.offset is not None:
        text += f" ({location(finding)})"
    return sarif_message(text)


def _result(finding: Finding, index: int) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "severity": finding.severity.value,
        "security-severity": security_severity(finding),
        "source": finding.source,
    }
    if finding.member:
        properties["member"] = finding.member
    if finding.offset is not None:
        properties["offset"] = finding.offset
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "ruleIndex": index,
        "level": LEVEL[finding.severity],
        "message": {"text": _message(finding)},
        "locations": [_location(finding.path, finding.line)],
        "partialFingerprints": {FINGERPRINT_KEY: finding.fingerprint},
        "properties": properties,
    }
    if finding.suppressions:
        result["suppressions"] = [
            {
                "kind": s.kind if s.kind in ("inSource", "external") else "external",
                "status": "accepted",
                "justification": s.justification,
                "properties": {"source": s.source},
            }
            for s in finding.suppressions
        ]
    return result


def _notice(finding: Finding, index: int) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "severity": finding.severity.value,
        "fingerprint": finding.fingerprint,
    }
    if finding.member:
        properties["member"] = finding.member
    if finding.suppressions:
        properties["suppressed"] = True
    notification: dict[str, Any] = {
        "descriptor": {"id": finding.rule_id, "index": index},
        "level": LEVEL[finding.severity],
        "message": {"text": _message(finding)},
        "properties": properties,
    }
    if not _is_repository(finding.path):
        notification["locations"] = [_location(finding.path, finding.line)]
    return notification


def _error(error: ScanError) -> dict[str, Any]:
    text = f"{error.path}: {error.message}"
    if error.member:
        text = f"{error.path}!{error.member}: {error.message}"
    notification: dict[str, Any] = {
        "level": "error" if error.internal else "warning",
        "message": {"text": sarif_message(text)},
        "properties": {"analyzer": error.analyzer, "internal": error.internal},
    }
    if not _is_repository(error.path):
        notification["locations"] = [_location(error.path)]
    return notification


def automation_id(category: str | None) -> str:
    """GitHub's category is ``automationDetails.id`` up to its last ``/``: end it with one,
    so two scans with different categories in one repository keep separate alerts."""
    category = (category or DEFAULT_CATEGORY).strip() or DEFAULT_CATEGORY
    return category if category.endswith("/") else category + "/"


def _srcroot(root: str) -> dict[str, Any]:
    path = PurePosixPath(root)
    if path.is_absolute():
        return {"uri": path.as_uri().rstrip("/") + "/"}
    return {
        "description": {
            "text": "The repository root (the git top level, else the "
            "working directory) that result paths are relative to."
        }
    }


def to_data(report: ScanReport, *, category: str | None = None) -> dict[str, Any]:
    rules = report.rules
    notice_ids = {f.rule_id for f in report.findings if rules[f.rule_id].notice}
    results = [f for f in report.findings if f.rule_id not in notice_ids]
    notices = [f for f in report.findings if f.rule_id in notice_ids]
    rule_ids = sorted({f.rule_id for f in results})
    notice_list = sorted(notice_ids)
    rule_index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    notice_index = {rule_id: i for i, rule_id in enumerate(notice_list)}
    notifications = [_notice(f, notice_index[f.rule_id]) for f in notices]
    notifications += [_error(e) for e in report.errors]
    invocation: dict[str, Any] = {
        "executionSuccessful": not report.incomplete,
        "exitCode": report.exit_code,
        "toolExecutionNotifications": notifications,
    }
    driver: dict[str, Any] = {
        "name": "mlsec",
        "version": report.tool_version,
        "semanticVersion": report.tool_version,
        "informationUri": INFORMATION_URI,
        "rules": [_descriptor(rules[r]) for r in rule_ids],
    }
    if notice_list:
        driver["notifications"] = [_descriptor(rules[r]) for r in notice_list]
    category = category if category is not None else getattr(report, "category", None)
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        "automationDetails": {"id": automation_id(category)},
        "originalUriBaseIds": {SRCROOT: _srcroot(report.root)},
        "invocations": [invocation],
        "results": [_result(f, rule_index[f.rule_id]) for f in results],
        "columnKind": "unicodeCodePoints",
        "properties": {"summary": report.summary()},
    }
    data: dict[str, Any] = json_safe({"$schema": SCHEMA, "version": "2.1.0", "runs": [run]})
    return data


def render(report: ScanReport, *, category: str | None = None) -> str:
    return json.dumps(to_data(report, category=category), indent=2) + "\n"
