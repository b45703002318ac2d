"""Issue 11's dependency bullets through the command line: exact exit code, rule, severity
and path, and the other findings of the same scan still there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import OSV_MINI


def scan_json(cli, path: Path, *flags: object):
    proc = cli("scan", path, "--no-git", "--format", "json", *flags)
    report = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc, report


def located(report) -> set[tuple[str, str, str, int | None]]:
    return {(f["rule_id"], f["severity"], f["path"], f["line"]) for f in report["findings"]}


@pytest.mark.parametrize(
    "include",
    ["-r " + "a" * 300 + ".txt", "-r x\x00y.txt"],
    ids=["300-character name", "NUL byte"],
)
def test_a_hostile_include_line_keeps_the_audit(cli, tmp_path: Path, include: str) -> None:
    (tmp_path / "requirements.txt").write_text(
        f"torch==1.13.0\n{include}\nlangchain==0.0.150\n", encoding="utf-8"
    )
    proc, report = scan_json(cli, tmp_path, "--offline", "--vuln-db", OSV_MINI)
    assert proc.returncode == 1, proc.stderr
    found = located(report)
    assert ("MLS212", "medium", "requirements.txt", 2) in found
    assert ("MLS204", "high", "requirements.txt", 1) in found  # the audit went on
    assert ("MLS200", "critical", "requirements.txt", 3) in found
    assert report["errors"] == []


@pytest.mark.parametrize("name", ["uv.lock", "poetry.lock", "pdm.lock", "Pipfile.lock"])
def test_deeply_nested_lock_file_keeps_the_audit(cli, tmp_path: Path, name: str) -> None:
    text = (
        '{"default": ' + "[" * 100_000 + "]" * 100_000 + "}"
        if name.endswith(".lock") and name.startswith("Pipfile")
        else "a = " + "[" * 100_000 + "]" * 100_000 + "\n"
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / name).write_text(text, encoding="utf-8")
    (tmp_path / "requirements.txt").write_text("torch==1.13.0\n", encoding="utf-8")
    proc, report = scan_json(cli, tmp_path, "--offline", "--vuln-db", OSV_MINI)
    assert proc.returncode == 1, proc.stderr
    found = located(report)
    assert ("MLS212", "medium", f"sub/{name}", None) in found
    assert ("MLS204", "high", "requirements.txt", 1) in found
    assert report["errors"] == []


@pytest.mark.parametrize("content", ["empty", "malformed"])
def test_a_database_without_a_valid_record_is_exit_2(cli, tmp_path: Path, content: str) -> None:
    db = tmp_path / "db"
    db.mkdir()
    if content == "malformed":
        (db / "PYSEC-1.json").write_text("{ not json", encoding="utf-8")
        (db / "PYSEC-2.yaml").write_text("id: [unclosed", encoding="utf-8")
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "requirements.txt").write_text("torch==1.13.0\n", encoding="utf-8")
    proc, _ = scan_json(cli, tmp_path / "repo", "--offline", "--vuln-db", db)
    assert proc.returncode == 2
    assert "no valid OSV record" in proc.stderr and "Traceback" not in proc.stderr


def test_offline_with_dependency_rules_deselected_needs_no_database(cli, tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("torch==1.13.0\n", encoding="utf-8")
    proc, report = scan_json(cli, tmp_path, "--offline", "--ignore", "MLS2")
    assert proc.returncode == 0, proc.stderr
    assert [f for f in report["findings"] if f["rule_id"].startswith("MLS2")] == []
