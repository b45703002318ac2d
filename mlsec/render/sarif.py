"""SARIF 2.1.0 output following GitHub code scanning conventions (contract: DESIGN.md)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from mlsec.findings import Finding, Severity
from mlsec.render import location
from mlsec.report import ScanReport
from mlsec.rules import Rule

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT_KEY = "mlsecFingerprint/v1"

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


def _uri(path: str) -> str:
    return quote(path, safe="/")


def _result(finding: Finding, index: int) -> dict[str, Any]:
    text = finding.message
    if finding.member or finding.offset is not None:
        text += f" ({location(finding)})"
    region: dict[str, Any] = {"startLine": finding.line or 1}
    properties: dict[str, Any] = {"severity": finding.severity.value, "source": finding.source}
    if finding.member:
        properties["member"] = finding.member
    if finding.offset is not None:
        properties["offset"] = finding.offset
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "ruleIndex": index,
        "level": LEVEL[finding.severity],
        "message": {"text": text},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": _uri(finding.path), "uriBaseId": "%SRCROOT%"},
                    "region": region,
                }
            }
        ],
        "partialFingerprints": {FINGERPRINT_KEY: finding.fingerprint},
        "properties": properties,
    }
    if finding.suppressions:
        result["suppressions"] = [
            {"kind": s.kind, "justification": s.justification} for s in finding.suppressions
        ]
    return result


def to_data(report: ScanReport) -> dict[str, Any]:
    rule_ids = report.used_rules()
    index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    notifications = [
        {
            "level": "warning",
            "message": {"text": f"{e.path}: {e.message}"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(e.path)}}}],
        }
        for e in report.errors
    ]
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "mlsec",
                "version": report.tool_version,
                "semanticVersion": report.tool_version,
                "informationUri": "https://github.com/mlsec-dev/mlsec",
                "rules": [_descriptor(report.rules[r]) for r in rule_ids],
            }
        },
        "automationDetails": {"id": report.category},
        "invocations": [
            {
                "executionSuccessful": not report.incomplete,
                "toolExecutionNotifications": notifications,
            }
        ],
        "results": [_result(f, index[f.rule_id]) for f in report.findings],
        "columnKind": "unicodeCodePoints",
        "properties": {"summary": report.summary()},
    }
    return {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}


def render(report: ScanReport) -> str:
    return json.dumps(to_data(report), indent=2) + "\n"
