"""The JSON report carries schema_version and validates against the published schema;
suppressed findings stay in it, with their suppressions, and are counted."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mlsec.render import render
from mlsec.render.json import SCHEMA_VERSION
from mlsec.report import ScanReport

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "schemas" / "mlsec-report.schema.json").read_text())


def _validate(data: Any) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(data)


def test_schema_version_is_the_schemas(mixed_report: ScanReport) -> None:
    data = json.loads(render(mixed_report, "json"))
    _validate(data)
    assert data["schema_version"] == SCHEMA_VERSION
    assert SCHEMA["properties"]["schema_version"]["pattern"].startswith("^" + SCHEMA_VERSION[0])


def test_suppressed_findings_are_kept_and_counted(mixed_report: ScanReport) -> None:
    data = json.loads(render(mixed_report, "json"))
    [kept] = [f for f in data["findings"] if f.get("suppressions")]
    assert kept["path"] == "ml/accepted.pkl" and kept["rule_id"] == "MLS101"
    assert kept["suppressions"] == [
        {
            "kind": "inSource",
            "justification": "test fixture [ok]",
            "source": "ml/.mlsec.toml: suppress[0]",
        }
    ]
    assert data["summary"]["suppressed"] == 1


def test_hostile_report_validates(hostile_report: ScanReport) -> None:
    _validate(json.loads(render(hostile_report, "json")))


def test_a_real_scan_validates(tmp_path: Path, cli) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.system, ("echo never-run",))

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.pkl").write_bytes(pickle.dumps(Evil(), protocol=4))
    proc = cli("scan", tmp_path, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    _validate(data)
    assert any(
        f["rule_id"] == "MLS101" and f["path"].endswith("model.pkl") for f in data["findings"]
    )


def test_schema_rejects_what_is_not_a_report() -> None:
    with pytest.raises(jsonschema.ValidationError):
        _validate({"tool": {"name": "mlsec", "version": "1"}, "findings": []})


def test_demo_repository_report_validates_in_json_and_sarif() -> None:
    """Every analyzer's facts and findings (the demo has planted problems of each kind)."""
    from mlsec.config import build_options
    from mlsec.scan import scan

    report = scan(build_options(REPO / "fixtures" / "demo-repo", use_git=False))
    data = json.loads(render(report, "json"))
    _validate(data)
    assert {"aibom", "dependencies", "signatures"} <= set(data.get("facts", {}))
    sarif = json.loads(render(report, "sarif"))
    sarif_schema = json.loads(
        (REPO / "fixtures" / "schemas" / "sarif-schema-2.1.0.json").read_text()
    )
    jsonschema.Draft4Validator(sarif_schema).validate(sarif)
    results = sarif["runs"][0]["results"]
    assert {"MLS101", "MLS143"} <= {r["ruleId"] for r in results}
    by_rule = {r["ruleId"]: r["locations"][0]["physicalLocation"] for r in results}
    assert "region" not in by_rule["MLS101"]  # a binary checkpoint: no lines
    pins = [r for r in results if r["ruleId"].startswith("MLS20")]
    assert pins and all(
        r["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1 for r in pins
    )
