"""Suppressions stay visible: configuration [[suppress]], expiry, the tree's own configuration
(trust model), inline ignores, --no-config; all through the command line."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from .conftest import OSV_MINI, evil_pickle, ours, report, write

TOMORROW = datetime.date.today() + datetime.timedelta(days=1)
YESTERDAY = datetime.date.today() - datetime.timedelta(days=1)


def test_suppress_entry_keeps_the_finding_visible_and_out_of_the_gate(tmp_path: Path, cli) -> None:
    evil_pickle(tmp_path / "models" / "w.pkl")
    evil_pickle(tmp_path / "other.pkl")
    write(
        tmp_path / ".mlsec.toml",
        f'[[suppress]]\nrule = "MLS101"\npath = "models/*.pkl"\nreason = "vendored test sample"\n'
        f"expires = {TOMORROW.isoformat()}\n",
    )
    proc = cli("scan", tmp_path, "-f", "json", "--min-severity", "low")
    assert proc.returncode == 1  # other.pkl is not covered
    data = report(proc)
    assert ours(data) == [
        ("MLS101", "critical", "models/w.pkl", True),
        ("MLS101", "critical", "other.pkl", False),
    ]
    [covered] = [f for f in data["findings"] if f["path"] == "models/w.pkl"]
    assert covered["suppressions"] == [
        {"kind": "inSource", "justification": "vendored test sample",
         "source": ".mlsec.toml: suppress[0]"}
    ]  # fmt: skip
    assert data["summary"]["suppressed"] == 1
    assert data["summary"]["by_severity"]["critical"] == 1


def test_sarif_carries_the_suppression(tmp_path: Path, cli) -> None:
    evil_pickle(tmp_path / "w.pkl")
    write(tmp_path / ".mlsec.toml", '[[suppress]]\nrule = "MLS1"\nreason = "fixtures"\n')
    proc = cli("scan", tmp_path, "-f", "sarif")
    assert proc.returncode == 0, proc.stderr
    [result] = [r for r in report(proc)["runs"][0]["results"] if r["ruleId"] == "MLS101"]
    [suppression] = result["suppressions"]
    assert (suppression["kind"], suppression["justification"]) == ("inSource", "fixtures")
    assert suppression["properties"]["source"] == ".mlsec.toml: suppress[0]"


def test_expired_suppression_stops_applying_and_is_reported(tmp_path: Path, cli) -> None:
    evil_pickle(tmp_path / "w.pkl")
    write(
        tmp_path / ".mlsec.toml",
        f'[[suppress]]\nrule = "MLS101"\nreason = "until the fix"\nexpires = {YESTERDAY}\n',
    )
    proc = cli("scan", tmp_path, "-f", "json", "--min-severity", "low")
    assert proc.returncode == 1
    data = report(proc)
    assert ours(data) == [
        ("MLS101", "critical", "w.pkl", False),
        ("MLS920", "low", ".mlsec.toml", False),
    ]
    [notice] = [f for f in data["findings"] if f["rule_id"] == "MLS920"]
    assert notice["message"] == (
        f"Suppression suppress[0] expired on {YESTERDAY}; it no longer applies "
        "(reason given: until the fix)"
    )


def test_dependency_suppression_by_package_and_advisory_alias(tmp_path: Path, cli) -> None:
    write(tmp_path / "requirements.txt", "mlflow==2.9.0\nlangchain==0.0.171\n")
    write(
        tmp_path / ".mlsec.toml",
        '[[suppress]]\nrule = "MLS2"\npackage = "MLflow"\nadvisory = "PYSEC-2024-51"\n'
        'reason = "not reachable"\n',
    )
    proc = cli("scan", tmp_path, "-f", "json", "--offline", "--vuln-db", OSV_MINI)
    data = report(proc)
    by_package = {f["details"]["package"]: f for f in data["findings"] if f["rule_id"] < "MLS210"}
    assert by_package["mlflow"]["suppressions"][0]["justification"] == "not reachable"
    assert "suppressions" not in by_package["langchain"]
    assert proc.returncode == 1  # langchain still gates


def test_advisory_that_the_finding_does_not_have_does_not_suppress(tmp_path: Path, cli) -> None:
    write(tmp_path / "requirements.txt", "mlflow==2.9.0\n")
    write(
        tmp_path / ".mlsec.toml",
        '[[suppress]]\nadvisory = "GHSA-0000-0000-0000"\nreason = "other"\n',
    )
    proc = cli("scan", tmp_path, "-f", "json", "--offline", "--vuln-db", OSV_MINI)
    assert proc.returncode == 1
    assert not [f for f in report(proc)["findings"] if f.get("suppressions")]


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ('rule = "MLS101"', "suppress[0]: a suppression needs a reason"),
        ('reason = "x"', "suppress[0]: say what it suppresses"),
        ('rule = "MLS101"\nreason = "x"\nexpires = "soon"', "suppress[0].expires: expected a date"),
        ('rule = "MLS999"\nreason = "x"', "suppress[0].rule: unknown rule id: MLS999"),
        ('rule = "MLS101"\nreason = "x"\nuntil = 2020-01-01', "unknown key 'until'"),
    ],
)
def test_bad_suppression_is_exit_2(tmp_path: Path, cli, entry: str, needle: str) -> None:
    write(tmp_path / "ops.toml", f"[[suppress]]\n{entry}\n")
    proc = cli("scan", tmp_path, "--config", tmp_path / "ops.toml")
    assert proc.returncode == 2
    assert needle in proc.stderr


def test_in_tree_ignore_is_visible_as_suppressed(tmp_path: Path, cli) -> None:
    """The attack of the fail-closed issue: a pull request adds ignore = ["MLS1"]."""
    evil_pickle(tmp_path / "ml" / "w.pkl")
    write(tmp_path / "ml" / ".mlsec.toml", 'ignore = ["MLS1"]\n')
    proc = cli("scan", tmp_path / "ml", "-f", "json", "--no-git")
    assert proc.returncode == 0  # the repository may tune its own scan...
    [finding] = [f for f in report(proc)["findings"] if f["rule_id"] == "MLS101"]
    assert finding["severity"] == "critical"  # ...but what it removed stays in the report
    assert finding["suppressions"] == [
        {"kind": "inSource", "justification": "rule ignored by .mlsec.toml: ignore = ['MLS1']",
         "source": ".mlsec.toml"}
    ]  # fmt: skip
    # --no-config leaves the tree's configuration out: the finding gates again.
    proc = cli("scan", tmp_path / "ml", "-f", "json", "--no-config")
    assert proc.returncode == 1
    assert ("MLS101", "critical", "w.pkl", False) in ours(report(proc))


def test_in_tree_exclude_and_select_are_visible(tmp_path: Path, cli) -> None:
    evil_pickle(tmp_path / "tests" / "fixtures" / "evil.pkl")
    write(tmp_path / "requirements.txt", "requests\n")  # MLS210: not pinned
    write(tmp_path / ".mlsec.toml", 'exclude = ["tests/fixtures/**"]\nselect = ["MLS1"]\n')
    proc = cli("scan", tmp_path, "-f", "json", "--offline", "--vuln-db", OSV_MINI)
    assert proc.returncode == 0, proc.stderr
    said = {
        (f["rule_id"], f["path"]): f["suppressions"][0]["justification"]
        for f in report(proc)["findings"]
        if f["rule_id"] in ("MLS101", "MLS210")
    }
    assert said == {
        ("MLS101", "tests/fixtures/evil.pkl"):
            "path excluded by .mlsec.toml: exclude = ['tests/fixtures/**']",
        ("MLS210", "requirements.txt"): "rule not selected by .mlsec.toml: select = ['MLS1']",
    }  # fmt: skip


def test_operator_config_outside_the_tree_filters(tmp_path: Path, cli) -> None:
    repo = tmp_path / "repo"
    evil_pickle(repo / "w.pkl")
    write(tmp_path / "ops.toml", 'ignore = ["MLS101"]\n')
    proc = cli("scan", repo, "-f", "json", "--config", tmp_path / "ops.toml")
    assert proc.returncode == 0
    assert not [f for f in report(proc)["findings"] if f["rule_id"] == "MLS101"]
    # Operator [[suppress]] entries are "external".
    write(tmp_path / "ops.toml", '[[suppress]]\nrule = "MLS101"\nreason = "accepted by sec"\n')
    proc = cli("scan", repo, "-f", "json", "--config", tmp_path / "ops.toml")
    [finding] = [f for f in report(proc)["findings"] if f["rule_id"] == "MLS101"]
    assert finding["suppressions"][0]["kind"] == "external"
    assert finding["suppressions"][0]["source"] == "ops.toml: suppress[0]"


def test_no_config_refuses_a_config_inside_the_tree(tmp_path: Path, cli) -> None:
    write(tmp_path / ".mlsec.toml", "")
    proc = cli("scan", tmp_path, "--no-config", "--config", tmp_path / ".mlsec.toml")
    assert proc.returncode == 2
    assert "--config and --no-config exclude each other" in proc.stderr


def test_inline_ignore_in_a_manifest_does_not_gate(tmp_path: Path, cli) -> None:
    """`# mlsec: ignore[MLS201] reason` (the dependency analyzer attaches the suppression):
    the finding stays in the report, out of the gate; the other lines still gate."""
    tmp_path = tmp_path / "sub"
    write(tmp_path / "requirements.txt", "mlflow==2.9.0  # mlsec: ignore[MLS201] not reachable\n")
    proc = cli("scan", tmp_path, "-f", "json", "--offline", "--vuln-db", OSV_MINI)
    assert proc.returncode == 0, proc.stderr
    data = report(proc)
    [finding] = [f for f in data["findings"] if f["rule_id"] == "MLS201"]
    assert (finding["path"], finding["line"]) == ("requirements.txt", 1)
    assert finding["suppressions"] == [
        {"kind": "inSource", "justification": "not reachable", "source": "requirements.txt:1"}
    ]
    assert data["summary"]["suppressed_by_kind"] == {"inSource": 1, "external": 0}
    # From a parent folder: the source is a repository path like the finding's.
    proc = cli("scan", "sub", "-f", "json", "--offline", "--vuln-db", OSV_MINI, cwd=tmp_path.parent)
    [finding] = [f for f in report(proc)["findings"] if f["rule_id"] == "MLS201"]
    assert finding["path"] == "sub/requirements.txt"
    assert finding["suppressions"][0]["source"] == "sub/requirements.txt:1"
    write(tmp_path / "requirements.txt", "mlflow==2.9.0  # mlsec: ignore[MLS201] not reachable\n"
          "langchain==0.0.171\n")  # fmt: skip
    proc = cli("scan", tmp_path, "-f", "sarif", "--offline", "--vuln-db", OSV_MINI)
    assert proc.returncode == 1  # langchain, critical, is not covered
    results = report(proc)["runs"][0]["results"]
    assert [r["ruleId"] for r in results if r.get("suppressions")] == ["MLS201"]


def test_expired_operator_suppression_is_a_scan_notice(tmp_path: Path, cli) -> None:
    repo = tmp_path / "repo"
    evil_pickle(repo / "w.pkl")
    write(
        tmp_path / "ops.toml",
        f'[[suppress]]\nrule = "MLS101"\nreason = "r"\nexpires = {YESTERDAY}\n',
    )
    proc = cli("scan", repo, "-f", "json", "--config", tmp_path / "ops.toml")
    assert proc.returncode == 1
    [notice] = [f for f in report(proc)["findings"] if f["rule_id"] == "MLS920"]
    assert notice["path"] == "."  # the operator's file is not in the repository


def test_in_tree_include_and_severity_raise(tmp_path: Path, cli) -> None:
    evil_pickle(tmp_path / "models" / "w.pkl")
    evil_pickle(tmp_path / "scratch" / "x.pkl")
    write(tmp_path / ".mlsec.toml", 'include = ["models/**"]\n[severity]\nMLS102 = "high"\n')
    proc = cli("scan", tmp_path, "-f", "json")
    assert proc.returncode == 1
    found = ours(report(proc))
    assert ("MLS101", "critical", "scratch/x.pkl", True) in found  # outside include
    assert ("MLS101", "critical", "models/w.pkl", False) in found
    assert ("MLS102", "high", "models/w.pkl", False) in found  # raising applies as is


def test_in_tree_configuration_linked_from_outside_is_not_read(tmp_path: Path, cli) -> None:
    repo, outside = tmp_path / "repo", tmp_path / "elsewhere.toml"
    evil_pickle(repo / "w.pkl")
    write(outside, 'ignore = ["MLS1"]\n')
    (repo / ".mlsec.toml").symlink_to(outside)
    proc = cli("scan", repo, "-f", "json")
    assert proc.returncode == 2
    assert "a symlink out of the scanned tree; it was not read" in proc.stderr
    assert ("MLS101", "critical", "w.pkl", False) in ours(report(proc))


def test_too_many_suppressions_are_refused(tmp_path: Path, cli) -> None:
    write(tmp_path / "ops.toml", '[[suppress]]\nrule = "MLS1"\nreason = "r"\n' * 10_001)
    proc = cli("scan", tmp_path / "ops.toml", "--config", tmp_path / "ops.toml")
    assert proc.returncode == 2
    assert "suppress: more than 10000 entries" in proc.stderr


@pytest.mark.parametrize(
    "text",
    [
        'exclude = ["' + "a*" * 200 + '"]\n',
        '[[suppress]]\npath = "' + "*" * 300 + '"\nreason = "r"\n',
    ],
)
def test_overlong_globs_in_configuration_are_refused(tmp_path: Path, cli, text: str) -> None:
    evil_pickle(tmp_path / "w.pkl")
    write(tmp_path / ".mlsec.toml", text)
    proc = cli("scan", tmp_path, "-f", "json")
    assert proc.returncode == 2
    assert "is not a usable glob (over 256 characters" in proc.stderr
    assert ("MLS101", "critical", "w.pkl", False) in ours(report(proc))
