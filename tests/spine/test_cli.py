"""The command line contract: exit codes, formats, streams (DESIGN.md), via the real CLI."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from mlsec import __version__


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo never-run",))


@pytest.fixture
def evil_repo(tmp_path: Path) -> Path:
    (tmp_path / "weights.bin").write_bytes(pickle.dumps(_Evil(), protocol=2))
    return tmp_path


@pytest.fixture
def clean_repo(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text("print('hello')\n")
    return tmp_path


def test_version(cli) -> None:
    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"mlsec {__version__}"


def test_exit_0_on_clean_repo(clean_repo: Path, cli) -> None:
    proc = cli("scan", clean_repo, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["findings"] == []


def test_exit_1_at_or_above_fail_on(evil_repo: Path, cli) -> None:
    assert cli("scan", evil_repo, "--format", "json").returncode == 1
    assert cli("scan", evil_repo, "--fail-on", "critical", "--format", "json").returncode == 1


def test_fail_on_none_never_fails(evil_repo: Path, cli) -> None:
    proc = cli("scan", evil_repo, "--fail-on", "none", "--format", "json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["summary"]["fail_on"] == "none"


def test_exit_2_on_missing_path(tmp_path: Path, cli) -> None:
    proc = cli("scan", tmp_path / "nope")
    assert proc.returncode == 2
    assert "path not found" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_exit_2_on_bad_flag(clean_repo: Path, cli) -> None:
    proc = cli("scan", clean_repo, "--fail-on", "sometimes")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_exit_2_on_bad_select(clean_repo: Path, cli) -> None:
    proc = cli("scan", clean_repo, "--select", "XYZ1")
    assert proc.returncode == 2
    assert "not a rule id" in proc.stderr


def test_output_file_and_stdout_stays_empty(evil_repo: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "out" / "report.json"
    proc = cli("scan", evil_repo, "--format", "json", "--output", out)
    assert proc.returncode == 1
    assert proc.stdout == ""
    data = json.loads(out.read_text())
    assert data["tool"] == {"name": "mlsec", "version": __version__}
    assert set(data) >= {"tool", "findings", "errors", "skipped", "summary"}


def test_json_finding_fields(evil_repo: Path, cli) -> None:
    data = json.loads(cli("scan", evil_repo, "--format", "json").stdout)
    [finding] = [f for f in data["findings"] if f["rule_id"] == "MLS101"]
    assert finding["path"] == "weights.bin"
    assert finding["severity"] == "critical"
    assert finding["member"] is None
    assert isinstance(finding["offset"], int)
    assert len(finding["fingerprint"]) == 32


def test_single_file_path(evil_repo: Path, cli) -> None:
    data = json.loads(cli("scan", evil_repo / "weights.bin", "--format", "json").stdout)
    # (modelscan's notices, where it is not installed, are about the whole scan: ".")
    assert {f["path"] for f in data["findings"] if f["source"] == "mlsec"} == {"weights.bin"}
    assert "MLS101" in {f["rule_id"] for f in data["findings"]}
    assert data["summary"]["files_scanned"] == 1


def test_select_and_ignore(evil_repo: Path, cli) -> None:
    ignored = cli("scan", evil_repo, "--ignore", "MLS101", "--format", "json")
    assert ignored.returncode == 0
    assert not [f for f in json.loads(ignored.stdout)["findings"] if f["rule_id"] == "MLS101"]
    selected = cli("scan", evil_repo, "--select", "MLS9", "--format", "json")
    assert all(f["rule_id"].startswith("MLS9") for f in json.loads(selected.stdout)["findings"])


def test_baseline_suppresses_known_findings(evil_repo: Path, tmp_path: Path, cli) -> None:
    baseline = tmp_path / "baseline.json"
    cli("scan", evil_repo, "--format", "json", "--output", baseline)
    proc = cli("scan", evil_repo, "--baseline", baseline, "--format", "json")
    assert proc.returncode == 0
    data = json.loads(proc.stdout)
    # Still in the report, each marked as accepted by the operator's baseline.
    assert {f["rule_id"] for f in data["findings"]} == {"MLS101", "MLS102"}
    for finding in data["findings"]:
        assert finding["suppressions"] == [
            {"kind": "external", "justification": "in baseline baseline.json",
             "source": "baseline.json"}
        ]  # fmt: skip
    assert data["summary"]["findings"] == 0
    assert data["summary"]["suppressed"] == 2


def test_baseline_from_sarif(evil_repo: Path, tmp_path: Path, cli) -> None:
    baseline = tmp_path / "baseline.sarif"
    cli("scan", evil_repo, "--format", "sarif", "--output", baseline)
    assert cli("scan", evil_repo, "--baseline", baseline, "--format", "json").returncode == 0


def test_table_and_markdown(evil_repo: Path, cli) -> None:
    table = cli("scan", evil_repo)
    assert table.returncode == 1
    assert "CRITICAL" in table.stdout and "MLS101" in table.stdout
    assert table.stderr == ""  # no progress bar when stderr is not a terminal
    md = cli("scan", evil_repo, "--format", "markdown")
    assert "## mlsec scan" in md.stdout and "`MLS101`" in md.stdout


def test_rules_command_lists_every_rule(cli) -> None:
    from mlsec.rules import load_rules

    proc = cli("rules")
    assert proc.returncode == 0
    for rule_id in load_rules():
        assert rule_id in proc.stdout
    data = json.loads(cli("rules", "--format", "json").stdout)
    assert {r["id"] for r in data} == set(load_rules())


def test_help_explains_exit_codes(cli) -> None:
    proc = cli("scan", "--help")
    assert proc.returncode == 0
    assert "--fail-on" in proc.stdout and "Exit code" in proc.stdout


def test_summary_is_appended_alongside_the_report(evil_repo: Path, tmp_path: Path, cli) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text("# earlier step\n")
    out = tmp_path / "report.sarif"
    proc = cli("scan", evil_repo, "--format", "sarif", "--output", out, "--summary", summary)
    assert proc.returncode == 1
    text = summary.read_text()
    assert text.startswith("# earlier step\n")
    assert "## mlsec scan" in text and "`MLS101`" in text
    assert json.loads(out.read_text())["version"] == "2.1.0"
