"""SARIF that GitHub code scanning places right: repository-relative URIs, regions only
where there are lines, notices as tool notifications, suppressions, CVSS-based
security-severity, the category, and a failed execution when an analyzer failed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from mlsec.findings import ScanError
from mlsec.render.sarif import to_data
from mlsec.report import ScanReport

from .conftest import BINARY, SUPPRESSED, VULNERABLE, make_report

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "fixtures" / "schemas" / "sarif-schema-2.1.0.json").read_text())


def _run(report: ScanReport, **kw: Any) -> dict[str, Any]:
    data = to_data(report, **kw)
    jsonschema.Draft4Validator(SCHEMA).validate(data)
    run: dict[str, Any] = data["runs"][0]
    return run


def _by_path(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: r for r in run["results"]
    }


def test_locations_regions_and_root(mixed_report: ScanReport) -> None:
    run = _run(mixed_report)
    results = _by_path(run)
    binary = results["ml/model.pt"]["locations"][0]["physicalLocation"]
    assert binary == {"artifactLocation": {"uri": "ml/model.pt", "uriBaseId": "%SRCROOT%"}}
    assert results["ml/model.pt"]["properties"]["member"] == "archive/data.pkl"
    assert results["ml/model.pt"]["properties"]["offset"] == 12
    text = results["requirements.txt"]["locations"][0]["physicalLocation"]
    assert text["region"] == {"startLine": 3}
    assert run["originalUriBaseIds"] == {"%SRCROOT%": {"uri": "file:///work/repo/"}}
    fp = results["ml/model.pt"]["partialFingerprints"]["mlsecFingerprint/v1"]
    assert fp == BINARY.fingerprint


def test_relative_root_has_a_description() -> None:
    run = _run(make_report([BINARY], root="ml"))
    assert "description" in run["originalUriBaseIds"]["%SRCROOT%"]


def test_notices_are_tool_notifications_not_results(mixed_report: ScanReport) -> None:
    run = _run(mixed_report)
    assert {r["ruleId"] for r in run["results"]} == {
        "MLS101",
        "MLS201",
        "MLS302",
        "MLS305",
        "MLS902",
    }
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == sorted(
        {r["ruleId"] for r in run["results"]}
    )
    notes = run["invocations"][0]["toolExecutionNotifications"]
    by_rule = {n["descriptor"]["id"]: n for n in notes}
    assert set(by_rule) == {"MLS194", "MLS901"}
    assert "locations" not in by_rule["MLS194"]  # about the scan, not a file
    loc = by_rule["MLS901"]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert loc == {"uri": "ml/locked.bin", "uriBaseId": "%SRCROOT%"}
    descriptors = [d["id"] for d in run["tool"]["driver"]["notifications"]]
    for note in notes:
        assert descriptors[note["descriptor"]["index"]] == note["descriptor"]["id"]
    assert run["invocations"][0]["executionSuccessful"] is True


def test_failed_analyzer_is_an_unsuccessful_execution() -> None:
    crash = ScanError(".", "analyzer deps failed: KeyError", analyzer="deps", internal=True)
    run = _run(make_report([BINARY], errors=(crash,)))
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["exitCode"] == 2
    [note] = invocation["toolExecutionNotifications"]
    assert note["level"] == "error" and "locations" not in note


def test_security_severity_from_cvss_else_severity(mixed_report: ScanReport) -> None:
    results = _by_path(_run(mixed_report))
    assert results["requirements.txt"]["properties"]["security-severity"] == "9.8"
    assert results["ml/model.pt"]["properties"]["security-severity"] == "9.5"
    assert results["ml/link.bin"]["properties"]["security-severity"] == "5.5"
    assert results["ml/link.bin"]["level"] == "warning"


def test_suppressed_findings_carry_suppressions(mixed_report: ScanReport) -> None:
    results = _by_path(_run(mixed_report))
    assert results["ml/accepted.pkl"]["suppressions"] == [
        {
            "kind": "inSource",
            "status": "accepted",
            "justification": "test fixture [ok]",
            "properties": {"source": "ml/.mlsec.toml: suppress[0]"},
        }
    ]
    assert "suppressions" not in results["ml/model.pt"]


def test_category_and_help_uri() -> None:
    assert _run(make_report([VULNERABLE]))["automationDetails"] == {"id": "mlsec/"}
    assert _run(make_report([VULNERABLE]), category="ml-models")["automationDetails"] == {
        "id": "ml-models/"
    }
    report = make_report([SUPPRESSED])
    run = _run(report._replace(fail_on=None), category="mlsec/weights/")
    assert run["automationDetails"]["id"] == "mlsec/weights/"
    [rule] = run["tool"]["driver"]["rules"]
    assert rule["helpUri"].endswith("/rules/MLS101.toml")
    assert rule["helpUri"].startswith("https://")


def test_subfolder_scan_has_repository_relative_uris_and_no_binary_regions(
    tmp_path: Path, cli
) -> None:
    import os
    import pickle
    import subprocess

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo never-run",))

    repo = tmp_path / "repo"
    (repo / "ml" / "odd dir").mkdir(parents=True)
    (repo / "ml" / "odd dir" / "check#point?.pt").write_bytes(pickle.dumps(Evil(), protocol=4))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    proc = cli("scan", repo / "ml", "--format", "sarif")
    assert proc.returncode == 1, proc.stderr
    run = json.loads(proc.stdout)["runs"][0]
    jsonschema.Draft4Validator(SCHEMA).validate({"version": "2.1.0", "runs": [run]})
    [evil] = [r for r in run["results"] if r["ruleId"] == "MLS101"]
    location = evil["locations"][0]["physicalLocation"]
    assert "region" not in location
    uri = location["artifactLocation"]["uri"]
    assert uri == "ml/odd%20dir/check%23point%3F.pt"
