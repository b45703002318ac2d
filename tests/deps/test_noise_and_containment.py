"""Findings a user acts on (the noise rules), containment of hostile manifests, the
database failing closed, and inline ignores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlsec.config import build_options
from mlsec.errors import MlsecError
from mlsec.findings import Severity
from mlsec.scan import scan

from .conftest import OSV_MINI

ANALYZERS = ("mlsec.analyzers.dependencies:DependencyAnalyzer",)


def run(path: Path, **flags: object):
    flags.setdefault("offline", True)
    flags.setdefault("vuln_db", OSV_MINI)
    return scan(build_options(path, use_git=False, **flags), analyzers=ANALYZERS)


def by_rule(report) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in report.findings:
        if f.rule_id != "MLS222":  # osv-mini is old on purpose
            out.setdefault(f.rule_id, []).append(f)
    return out


# -- noise rules ------------------------------------------------------------------------------
def test_unpinned_requirements_of_a_manifest_are_one_finding(tmp_path: Path, write) -> None:
    write(
        "pyproject.toml",
        '[project]\nname = "lib"\ndependencies = [\n  "numpy>=1.20",\n  "pyyaml",\n'
        '  "tqdm<5",\n]\n',
    )
    write("requirements.txt", "numpy>=1.20\npyyaml\nrich>=13\n")  # repeats two of them
    rules = by_rule(run(tmp_path, ignore=("MLS206",)))
    assert [(f.path, f.line, f.severity) for f in rules["MLS210"]] == [
        ("pyproject.toml", 4, Severity.LOW),
        ("requirements.txt", 3, Severity.LOW),
    ]
    first, second = rules["MLS210"]
    assert [p["name"] for p in first.details["packages"]] == ["numpy", "pyyaml", "tqdm"]
    assert "3 requirements are not pinned" in first.message
    assert [p["name"] for p in second.details["packages"]] == ["rich"]  # listed once a folder


def test_lock_file_covers_the_project_ranges(tmp_path: Path, write) -> None:
    write("pyproject.toml", '[project]\nname = "app"\ndependencies = ["numpy>=1.20"]\n')
    write(
        "uv.lock",
        'version = 1\n[[package]]\nname = "app"\nversion = "0.1"\nsource = { editable = "." }\n'
        'dependencies = [{ name = "numpy" }]\n\n[[package]]\nname = "numpy"\nversion = "1.26.4"\n'
        'source = { registry = "https://pypi.org/simple" }\n',
    )
    assert by_rule(run(tmp_path)) == {}


def test_uv_workspace_members_are_first_party_and_covered(tmp_path: Path, write) -> None:
    write(
        "pyproject.toml",
        '[project]\nname = "root"\ndependencies = ["core"]\n'
        '[tool.uv.workspace]\nmembers = ["packages/*"]\n'
        "[tool.uv.sources]\ncore = { workspace = true }\n",
    )
    write(
        "packages/core/pyproject.toml",
        '[project]\nname = "core"\ndependencies = ["numpy>=1.20", "root-helper"]\n',
    )
    write(
        "uv.lock",
        'version = 1\n[[package]]\nname = "root"\nversion = "0.1"\nsource = { virtual = "." }\n'
        'dependencies = [{ name = "core" }]\n\n'
        '[[package]]\nname = "core"\nversion = "0.1"\nsource = { editable = "packages/core" }\n'
        'dependencies = [{ name = "numpy" }]\n\n'
        '[[package]]\nname = "numpy"\nversion = "1.26.4"\n'
        'source = { registry = "https://pypi.org/simple" }\n',
    )
    rules = by_rule(run(tmp_path))
    # numpy is fixed by the root lock; only root-helper is in no lock: the one finding
    (unpinned,) = rules["MLS210"]
    assert unpinned.path == "packages/core/pyproject.toml"
    assert [p["name"] for p in unpinned.details["packages"]] == ["root-helper"]


def test_poetry_multiple_constraints_judge_each_alternative(tmp_path: Path, write) -> None:
    write(
        "pyproject.toml",
        "[tool.poetry.dependencies]\npython = '^3.8'\n"
        'scikit-learn = [\n  {version = "0.23.0", python = "<3.8"},\n'
        '  {version = "^1.0", python = ">=3.8"},\n]\n',
    )
    rules = by_rule(run(tmp_path))
    (pinned,) = rules["MLS204"]  # the pinned alternative is audited ...
    assert pinned.key == "scikit-learn==0.23.0" and pinned.details["smallest_fix"] == "0.24"
    (ranged,) = rules["MLS210"]  # ... and the range alternative is not hidden behind it
    assert ranged.details["packages"] == [{"name": "scikit-learn", "specifier": "^1.0", "line": 3}]


def test_a_constraints_file_constrains_and_is_not_a_second_manifest(tmp_path: Path, write) -> None:
    write("requirements.txt", "-c constraints.txt\ntorch\nnumpy\n")
    write("constraints.txt", "torch==1.13.0\nmlflow==2.9.0\n")
    rules = by_rule(run(tmp_path))
    (torch,) = rules["MLS204"]
    assert (torch.path, torch.line, torch.key) == ("constraints.txt", 1, "torch==1.13.0")
    assert "MLS201" not in rules  # mlflow is constrained but never required: not installed
    (unpinned,) = rules["MLS210"]
    assert [p["name"] for p in unpinned.details["packages"]] == ["numpy"]


def test_one_finding_per_vulnerable_version_with_every_alias(tmp_path: Path, write) -> None:
    write("requirements.txt", "distributed==2021.9.0\n")
    write("sub/requirements.txt", "distributed==2021.9.0\n")
    (finding,) = by_rule(run(tmp_path))["MLS204"]
    (advisory,) = finding.details["advisories"]
    assert advisory["id"] == "PYSEC-2021-871"
    assert set(advisory["aliases"]) == {
        "PYSEC-2021-872",
        "CVE-2021-42343",
        "GHSA-hwqr-f3v9-hwxr",
        "GHSA-j8fq-86c5-5v2r",
    }
    assert "CVE-2021-42343" in finding.message and "GHSA-j8fq-86c5-5v2r" in finding.message
    assert [loc["path"] for loc in finding.details["locations"]] == [
        "requirements.txt",
        "sub/requirements.txt",
    ]


def test_range_floor_that_avoids_every_advisory(tmp_path: Path, write) -> None:
    write("requirements.txt", "mlflow>=2.0\napache-iotdb>=0.12\nnumpy>=1.22\n")
    rules = by_rule(run(tmp_path))
    floors = {f.key: f for f in rules["MLS206"]}
    assert set(floors) == {"mlflow", "apache-iotdb"}  # numpy>=1.22: lowest allowed is clean
    iotdb = floors["apache-iotdb"]
    assert (iotdb.line, iotdb.severity) == (2, Severity.LOW)
    assert iotdb.details["lowest_allowed"] == "0.12.2"
    assert iotdb.details["safe_floor"] == "0.14.0"
    assert "`apache-iotdb>=0.14.0` allows none" in iotdb.message
    assert "releases known from the advisory records" in iotdb.message
    mlflow = floors["mlflow"]
    assert mlflow.details["safe_floor"] == "2.10.1"
    assert mlflow.details["vulnerable_releases"] >= 1


def test_range_floor_is_not_reported_for_ranges_a_lock_covers(tmp_path: Path, write) -> None:
    write("requirements.in", "mlflow>=2.0\n")
    write("requirements.txt", "mlflow==2.10.1\n")
    assert by_rule(run(tmp_path)) == {}


# -- containment ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "line",
    ["-r " + "a" * 300 + ".txt", "-r x\x00y.txt", "-c " + "b/" * 2000 + "c.txt"],
)
def test_hostile_include_lines_cost_only_that_line(tmp_path: Path, line: str) -> None:
    (tmp_path / "requirements.txt").write_text(f"torch==1.13.0\n{line}\n", encoding="utf-8")
    report = run(tmp_path)
    rules = by_rule(report)
    assert report.errors == ()
    assert rules["MLS204"][0].key == "torch==1.13.0"  # the audit went on
    (problem,) = rules["MLS212"]
    assert (problem.path, problem.line) == ("requirements.txt", 2)
    assert report.exit_code == 1


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("uv.lock", "a = " + "[" * 50_000 + "]" * 50_000 + "\n"),
        ("Pipfile.lock", '{"default": ' + "[" * 50_000 + "]" * 50_000 + "}"),
        ("poetry.lock", '[[package]]\nname = "' + "n" * 300 + '"\nversion = "1"\n'),
        ("pdm.lock", '[[package]]\nname = "a\\u0000b"\nversion = "1"\n'),
        ("Pipfile.lock", '{"default": {"x": "==1"}, "develop": []}'),
        ("pyproject.toml", '[project]\ndependencies = "torch==1.13.0"\n'),
        ("Pipfile", "[packages]\nx = 3\n"),
    ],
)
def test_hostile_lock_files_are_a_finding_for_that_file(
    tmp_path: Path, name: str, text: str
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / name).write_text(text, encoding="utf-8")
    (tmp_path / "requirements.txt").write_text("torch==1.13.0\n", encoding="utf-8")
    report = run(tmp_path)
    rules = by_rule(report)
    assert report.errors == ()
    assert {f.path for f in rules["MLS212"]} == {f"sub/{name}"}
    assert rules["MLS204"][0].path == "requirements.txt"


def test_unreadable_manifest_is_a_finding(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "requirements.txt")  # what the walker lists, then swapped
    from mlsec.deps import parse_manifests

    (m,) = parse_manifests([(tmp_path / "requirements.txt", "requirements.txt")], tmp_path)
    assert m.problems and "cannot read" in m.problems[0][1]


# -- the database fails closed ----------------------------------------------------------------
def test_empty_database_is_exit_2(tmp_path: Path, write) -> None:
    write("repo/requirements.txt", "torch==1.13.0\n")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MlsecError, match="holds no valid OSV record"):
        run(tmp_path / "repo", vuln_db=tmp_path / "empty")


def test_all_malformed_database_is_exit_2(tmp_path: Path, write, cli) -> None:
    write("repo/requirements.txt", "torch==1.13.0\n")
    db = tmp_path / "bad"
    for i in range(3):
        (db / f"pkg{i}").mkdir(parents=True)
        (db / f"pkg{i}" / "PYSEC-1.json").write_text("{ not json", encoding="utf-8")
    with pytest.raises(MlsecError, match="holds no valid OSV record"):
        run(tmp_path / "repo", vuln_db=db)
    proc = cli("scan", tmp_path / "repo", "--offline", "--vuln-db", db, "--no-git")
    assert proc.returncode == 2 and "no valid OSV record" in proc.stderr


def test_database_age_comes_from_its_newest_record(tmp_path: Path, write) -> None:
    db = tmp_path / "db"
    db.mkdir()
    record = {
        "id": "GHSA-xxxx-yyyy-zzzz",
        "modified": "2020-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "x"}, "versions": ["1"]}],
    }
    (db / "r.json").write_text(json.dumps(record), encoding="utf-8")  # file time: now
    write("repo/requirements.txt", "x==1\n")
    report = run(tmp_path / "repo", vuln_db=db)
    (stale,) = [f for f in report.findings if f.rule_id == "MLS222"]
    assert "newest record modified 2020-01-01" in stale.message
    del record["modified"]
    (db / "r.json").write_text(json.dumps(record), encoding="utf-8")
    report = run(tmp_path / "repo", vuln_db=db)
    (unknown,) = [f for f in report.findings if f.rule_id == "MLS222"]
    assert "age is unknown" in unknown.message


def test_offline_with_dependency_rules_deselected_needs_no_database(tmp_path: Path, write) -> None:
    write("requirements.txt", "torch==1.13.0\n")
    report = run(tmp_path, vuln_db=None, ignore=("MLS2",))
    assert report.findings == () and report.errors == ()
    report = run(tmp_path, vuln_db=None, select=("MLS21",))  # manifests only
    assert report.findings == ()


def test_a_service_that_answers_for_no_package_is_high(tmp_path: Path, write, monkeypatch) -> None:
    from mlsec.deps import service
    from mlsec.deps.audit import AuditOutcome

    def nothing(self, packages):
        outcome = AuditOutcome(service="pip-audit:pypi")
        for package in packages:
            outcome.unaudited[package] = "skipped by the service: not found on PyPI"
        return outcome

    monkeypatch.setattr(service.PipAuditAuditor, "audit", nothing)
    write("requirements.txt", "torch==1.13.0\nmlflow==2.9.0\n")
    report = run(tmp_path, offline=False, vuln_db=None)
    (finding,) = report.findings
    assert (finding.rule_id, finding.severity) == ("MLS220", Severity.HIGH)
    assert "answered for none of the packages" in finding.message
    assert report.exit_code == 1


# -- inline ignores ---------------------------------------------------------------------------
def test_inline_ignore_with_a_reason_suppresses_that_line(tmp_path: Path, write) -> None:
    write(
        "requirements.txt",
        "mlflow==2.9.0  # mlsec: ignore[MLS201] tracking client only; no server deployed\n"
        "torch==1.13.0  # mlsec: ignore[MLS201,MLS204] CPU inference of our own models\n"
        "numpy>=1.22  # mlsec: ignore[MLS210]\n",
    )
    report = run(tmp_path)
    rules = by_rule(report)
    (mlflow,) = rules["MLS201"]
    (suppression,) = mlflow.suppressions
    assert suppression.kind == "inSource"
    assert suppression.justification == "tracking client only; no server deployed"
    assert suppression.source == "requirements.txt:1"
    (torch,) = rules["MLS204"]
    assert torch.suppressed and torch.suppressions[0].source == "requirements.txt:2"
    # no reason: the comment does not apply, and says so
    (unpinned,) = rules["MLS210"]
    assert not unpinned.suppressed
    (reasonless,) = rules["MLS208"]
    assert (reasonless.line, reasonless.severity) == (3, Severity.LOW)


def test_inline_ignore_of_another_rule_does_not_apply(tmp_path: Path, write) -> None:
    write("requirements.txt", "torch==1.13.0  # mlsec: ignore[MLS201] not this rule\n")
    (torch,) = by_rule(run(tmp_path))["MLS204"]
    assert not torch.suppressed


def test_inline_ignore_in_a_lock_file_and_an_unpinned_list(tmp_path: Path, write) -> None:
    write(
        "requirements.txt",
        "numpy>=1.22  # mlsec: ignore[MLS210] floor is tested in CI\nrich>=13\n",
    )
    rules = by_rule(run(tmp_path))
    grouped, own = sorted(rules["MLS210"], key=lambda f: f.suppressed)
    assert [p["name"] for p in grouped.details["packages"]] == ["rich"]
    assert own.suppressed and own.line == 1
