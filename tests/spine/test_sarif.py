"""SARIF output validates against the 2.1.0 schema and follows GitHub's conventions."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import jsonschema
import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SCHEMA = json.loads((FIXTURES / "schemas" / "sarif-schema-2.1.0.json").read_text())


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import subprocess

        return (subprocess.call, (["echo", "never-run"],))


@pytest.fixture
def sarif(tmp_path: Path, cli) -> dict:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "my model.bin").write_bytes(pickle.dumps(_Evil(), protocol=4))
    (tmp_path / "broken.pkl").write_bytes(pickle.dumps({"a": 1}, protocol=4)[:-4])
    (tmp_path / "link").symlink_to("/etc/hostname")
    proc = cli("scan", tmp_path, "--format", "sarif")
    assert proc.returncode == 1, proc.stderr
    return json.loads(proc.stdout)


def test_validates_against_schema(sarif: dict) -> None:
    jsonschema.Draft4Validator(SCHEMA).validate(sarif)


def test_github_conventions(sarif: dict) -> None:
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted({r["ruleId"] for r in run["results"]})
    for rule in rules:
        assert rule["help"]["text"] and rule["help"]["markdown"]
        assert isinstance(rule["properties"]["tags"], list)
        assert float(rule["properties"]["security-severity"]) >= 0
    by_rule = {r["ruleId"]: r for r in run["results"]}
    evil = by_rule["MLS101"]
    assert evil["level"] == "error"
    loc = evil["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "models/my%20model.bin", "uriBaseId": "%SRCROOT%"}
    assert "region" not in loc  # a binary file has no lines: the offset is in properties
    assert isinstance(evil["properties"]["offset"], int)
    assert f"@{evil['properties']['offset']}" in evil["message"]["text"]
    assert len(evil["partialFingerprints"]["mlsecFingerprint/v1"]) == 32
    assert by_rule["MLS902"]["level"] == "warning"
    assert (
        rules[[r["id"] for r in rules].index("MLS101")]["properties"]["security-severity"] == "9.5"
    )


def test_member_goes_to_properties_and_message() -> None:
    from mlsec.findings import Finding, Severity
    from mlsec.render.sarif import to_data
    from mlsec.report import ScanReport
    from mlsec.rules import load_rules

    finding = Finding(
        "MLS101", Severity.CRITICAL, "bad", "a.zip", member="m/model.pt!archive/data.pkl", offset=7
    )
    report = ScanReport("0", ".", (finding,), (), (), load_rules(), 1)
    data = to_data(report)
    jsonschema.Draft4Validator(SCHEMA).validate(data)
    result = data["runs"][0]["results"][0]
    assert result["properties"]["member"] == "m/model.pt!archive/data.pkl"
    assert "a.zip!m/model.pt!archive/data.pkl @7" in result["message"]["text"]
    assert result["level"] == "error"
