"""The dependency analyzer end to end: findings, lines, services, configuration, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlsec.config import build_options
from mlsec.deps.audit import AuditOutcome
from mlsec.errors import ConfigError, MlsecError
from mlsec.findings import Severity
from mlsec.scan import scan

from .conftest import OSV_MINI

ANALYZERS = ("mlsec.analyzers.dependencies:DependencyAnalyzer",)


def run(path: Path, **flags: object):
    options = build_options(path, use_git=False, **flags)
    return scan(options, analyzers=ANALYZERS)


def by_rule(report) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in report.findings:
        out.setdefault(f.rule_id, []).append(f)
    return out


def test_vulnerable_pinned_unpinned_and_unauditable(tmp_path: Path, write) -> None:
    write(
        "requirements.txt",
        """
        mlflow==2.9.0
        langchain==0.0.150
        torch==1.13.0
        numpy>=1.22
        git+https://github.com/org/x.git#egg=x
        requests==2.31.0
        """,
    )
    report = run(tmp_path, offline=True, vuln_db=OSV_MINI)
    rules = by_rule(report)
    (critical,) = rules["MLS200"]
    assert (critical.path, critical.line, critical.severity) == (
        "requirements.txt",
        2,
        Severity.CRITICAL,
    )
    assert critical.key == "langchain==0.0.150"
    assert critical.details["smallest_fix"] == "0.0.247"
    assert [a["id"] for a in critical.details["advisories"]] == ["PYSEC-2023-145", "PYSEC-2023-151"]
    (mlflow,) = rules["MLS201"]  # worst scored is high (8.1); the unscored one does not lower it
    assert (mlflow.line, mlflow.details["smallest_fix"]) == (1, "2.10.1")
    assert "PYSEC-2024-51" in mlflow.message
    (torch,) = rules["MLS204"]  # no score at all
    assert (torch.line, torch.severity) == (3, Severity.HIGH)
    (numpy,) = rules["MLS210"]
    assert (numpy.line, numpy.key) == (4, "unpinned")
    assert numpy.details["packages"] == [{"name": "numpy", "specifier": ">=1.22", "line": 4}]
    (vcs,) = rules["MLS211"]
    assert vcs.line == 5
    assert set(rules) == {"MLS200", "MLS201", "MLS204", "MLS210", "MLS211", "MLS222"}
    facts = report.facts["dependencies"]
    assert facts.service.startswith("osv-db:")
    assert {d.name for d in facts.dependencies} >= {"mlflow", "requests", "numpy", "x"}
    assert facts.unaudited == ()
    assert {a.package for a in facts.advisories} == {"mlflow", "langchain", "torch"}


def test_clean_pins_give_no_findings(tmp_path: Path, write) -> None:
    write("requirements.txt", "mlflow==2.10.1\ntorch==2.2.0\n")
    report = run(tmp_path, offline=True, vuln_db=OSV_MINI)
    assert [f.rule_id for f in report.findings] == ["MLS222"]  # only: the fixture is old


def test_lock_file_covers_ranges_and_one_finding_per_vulnerable_version(
    tmp_path: Path, write
) -> None:
    write("pyproject.toml", '[project]\nname = "d"\ndependencies = ["mlflow>=2"]\n')
    write(
        "uv.lock",
        """
        version = 1
        [[package]]
        name = "d"
        version = "0.1"
        source = { editable = "." }
        dependencies = [{ name = "mlflow" }]

        [[package]]
        name = "mlflow"
        version = "2.9.0"
        source = { registry = "https://pypi.org/simple" }
        """,
    )
    write("sub/requirements.txt", "mlflow==2.9.0\nnumpy\n")
    report = run(tmp_path, offline=True, vuln_db=OSV_MINI, ignore=("MLS222",))
    rules = by_rule(report)
    (mlflow,) = rules["MLS201"]  # one vulnerable version: one finding, every place listed
    assert (mlflow.path, mlflow.line) == ("sub/requirements.txt", 1)
    assert mlflow.details["locations"] == [
        {"path": "sub/requirements.txt", "line": 1},
        {"path": "uv.lock", "line": 8},
    ]
    assert "Also pinned in uv.lock" in mlflow.message
    # mlflow>=2 in pyproject.toml is fixed by uv.lock beside it; numpy in sub/ is not
    assert [(f.path, f.key) for f in rules["MLS210"]] == [("sub/requirements.txt", "unpinned")]


def test_broken_manifest_is_a_finding(tmp_path: Path, write) -> None:
    write("pyproject.toml", "[project\n")
    write("requirements.txt", "torch==1.13.0\n")
    report = run(tmp_path, offline=True, vuln_db=OSV_MINI)
    (broken,) = by_rule(report)["MLS212"]
    assert broken.path == "pyproject.toml" and broken.severity is Severity.MEDIUM
    assert by_rule(report)["MLS204"][0].path == "requirements.txt"


def test_config_ignore_vulns_and_dev(tmp_path: Path, write) -> None:
    write(
        ".mlsec.toml",
        """
        [dependencies]
        ignore-vulns = ["CVE-2022-45907"]
        dev = false
        max-db-age-days = 0
        """,
    )
    write(
        "pyproject.toml",
        """
        [project]
        name = "d"
        dependencies = ["torch==1.13.0"]
        [dependency-groups]
        dev = ["mlflow==2.9.0"]
        """,
    )
    report = run(tmp_path, offline=True, vuln_db=OSV_MINI)
    assert report.findings == ()  # torch's only advisory ignored by alias; dev group skipped


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("colour = 'red'", "unknown key"),
        ("dev = 'yes'", "expected true or false"),
        ("service = 'snyk'", "expected 'osv' or 'pypi'"),
        ("timeout = 0", "at least 1 second"),
        ("ignore-vulns = 'CVE-1'", "list of advisory ids"),
    ],
)
def test_config_is_validated(tmp_path: Path, write, section: str, message: str) -> None:
    write(".mlsec.toml", f"[dependencies]\n{section}\n")
    write("requirements.txt", "torch==1.13.0\n")
    with pytest.raises(ConfigError, match=message) as info:
        run(tmp_path, offline=True, vuln_db=OSV_MINI)
    assert ".mlsec.toml" in info.value.message and "[dependencies]" in info.value.message


def test_offline_without_database(tmp_path: Path, write, cli) -> None:
    write("requirements.txt", "torch==1.13.0\n")
    with pytest.raises(MlsecError, match="needs a vulnerability database"):
        run(tmp_path, offline=True)
    proc = cli("scan", tmp_path, "--offline", "--no-git")
    assert proc.returncode == 2
    assert "mlsec db update" in proc.stderr
    assert "Traceback" not in proc.stderr
    # nothing to audit: no database needed
    (tmp_path / "requirements.txt").write_text("numpy>=1\n", encoding="utf-8")
    assert [f.rule_id for f in run(tmp_path, offline=True).findings] == ["MLS210"]


def test_offline_uses_the_cached_database(tmp_path: Path, write, isolated_cache) -> None:
    import zipfile

    import yaml

    cached = isolated_cache / "osv"
    cached.mkdir(parents=True)
    with zipfile.ZipFile(cached / "all.zip", "w") as archive:
        for path in OSV_MINI.glob("vulns/torch/*.yaml"):
            doc = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
            archive.writestr(f"{path.stem}.json", json.dumps(doc, default=str))
    write("requirements.txt", "torch==1.13.0\n")
    report = run(tmp_path / "requirements.txt", offline=True)
    # the age is the newest record's (2022), not the export file's time (today)
    assert [f.rule_id for f in report.findings] == ["MLS204", "MLS222"]
    assert report.facts["dependencies"].service.startswith(f"osv-db:{cached}")


class _DownService:
    """A pip-audit service whose network is down."""

    def query(self, spec):
        import requests

        raise requests.ConnectionError(
            "HTTPSConnectionPool(host='api.osv.dev', port=443): Max retries exceeded "
            "(Caused by NameResolutionError: Failed to resolve 'api.osv.dev')"
        )


def test_online_with_the_network_down_reports_unaudited(tmp_path: Path, write, monkeypatch) -> None:
    from mlsec.deps import service

    monkeypatch.setattr(service.PipAuditAuditor, "_service", lambda self: _DownService())
    write("requirements.txt", "torch==1.13.0\nmlflow==2.9.0\n")
    report = run(tmp_path, offline=False)
    (unaudited,) = report.findings
    assert (unaudited.rule_id, unaudited.severity) == ("MLS220", Severity.HIGH)
    assert unaudited.path == "requirements.txt"
    assert "2 packages" in unaudited.message and "not known to be free" in unaudited.message
    assert unaudited.details["reason"] == (
        "osv service unavailable: cannot resolve api.osv.dev (no network or DNS)"
    )
    assert report.facts["dependencies"].unaudited == ("mlflow==2.9.0", "torch==1.13.0")
    assert report.exit_code == 1  # not a pass


def test_online_results_become_findings(tmp_path: Path, write, monkeypatch) -> None:
    from mlsec.deps import service
    from mlsec.facts import Advisory

    def fake_audit(self, packages):
        outcome = AuditOutcome(service="pip-audit:osv")
        for name, version in packages:
            if name == "torch":
                outcome.advisories[(name, version)] = [
                    Advisory("PYSEC-1", ("CVE-1",), name, version, "bad", ("1.13.1",), None)
                ]
                outcome.smallest_fix[(name, version)] = "1.13.1"
            if name == "private-pkg":
                outcome.unaudited[(name, version)] = "skipped by the service: not on PyPI"
        return outcome

    monkeypatch.setattr(service.PipAuditAuditor, "audit", fake_audit)
    write("requirements.txt", "torch==1.13.0\nprivate-pkg==1.0\n")
    rules = by_rule(run(tmp_path))
    assert [(f.line, f.details["service"]) for f in rules["MLS204"]] == [(1, "pip-audit:osv")]
    assert [(f.line, f.key) for f in rules["MLS221"]] == [(2, "private-pkg==1.0")]


def test_demo_repository_through_the_cli(cli, tmp_path: Path) -> None:
    demo = Path(__file__).resolve().parents[2] / "fixtures" / "demo-repo"
    proc = cli("scan", demo, "--format", "sarif")
    assert proc.returncode == 1, proc.stderr
    sarif = json.loads(proc.stdout)
    results = [r for r in sarif["runs"][0]["results"] if r["ruleId"].startswith("MLS2")]
    located = {
        (
            r["ruleId"],
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"].get("region", {}).get("startLine"),
        )
        for r in results
    }
    assert ("MLS200", "fixtures/demo-repo/requirements.txt", 4) in located  # langchain, critical
    assert ("MLS201", "fixtures/demo-repo/requirements.txt", 2) in located  # mlflow
    assert ("MLS204", "fixtures/demo-repo/requirements.txt", 3) in located  # torch, unscored
    assert ("MLS210", "fixtures/demo-repo/requirements.txt", 6) in located  # numpy range
    assert ("MLS211", "fixtures/demo-repo/requirements.txt", 7) in located  # VCS checkout


def test_cli_db_info_and_update_from_a_local_url(cli, tmp_path: Path, isolated_cache) -> None:
    import zipfile

    import yaml

    export = tmp_path / "all.zip"
    with zipfile.ZipFile(export, "w") as archive:
        for path in OSV_MINI.glob("vulns/*/*.yaml"):
            doc = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
            archive.writestr(f"{path.stem}.json", json.dumps(doc, default=str))
    env = {"XDG_CACHE_HOME": str(isolated_cache.parent)}
    proc = cli("db", "info", env=env)
    assert proc.returncode == 2 and "mlsec db update" in proc.stderr
    proc = cli("db", "update", "--url", export.as_uri(), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "24 advisories" in proc.stdout and "sha256:" in proc.stdout
    meta = json.loads((isolated_cache / "osv" / "mlsec-db.json").read_text())
    assert meta["url"] == export.as_uri() and len(meta["sha256"]) == 64
    proc = cli("db", "info", env=env)
    # the data's age (its newest record), not the download's
    assert proc.returncode == 0 and "date:      2024-05-16" in proc.stdout
    bad = cli("db", "update", "--url", "http://127.0.0.1:9/all.zip", "--timeout", "2", env=env)
    assert bad.returncode == 2 and "cannot download" in bad.stderr
    assert (isolated_cache / "osv" / "all.zip").is_file()  # the old export survives
    shutil.rmtree(isolated_cache)


def test_missing_vuln_db_path_is_a_usage_error(cli, tmp_path: Path, write) -> None:
    write("requirements.txt", "torch==1.13.0\n")
    proc = cli("scan", tmp_path, "--offline", "--vuln-db", tmp_path / "nope.zip", "--no-git")
    assert proc.returncode == 2
    assert "vulnerability database not found" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.network
def test_online_osv_finds_a_known_torch_advisory(tmp_path: Path, write) -> None:
    write("requirements.txt", "torch==1.13.0\n")
    report = run(tmp_path)
    ids = {
        i
        for f in report.findings
        for a in f.details.get("advisories", [])
        for i in (a["id"], *a["aliases"])
    }
    assert "CVE-2022-45907" in ids


def test_known_malicious_package_has_its_own_rule(tmp_path: Path, write) -> None:
    record = {
        "id": "MAL-2024-1",
        "modified": "2099-01-01T00:00:00Z",
        "summary": "Malicious code in torchtriton-fake (PyPI)",
        "affected": [
            {"package": {"ecosystem": "PyPI", "name": "torchtriton-fake"}, "versions": ["3.0.0"]}
        ],
    }
    db = tmp_path / "db"
    db.mkdir()
    (db / "MAL-2024-1.json").write_text(json.dumps(record), encoding="utf-8")
    write("repo/requirements.txt", "torchtriton_fake==3.0.0\n")
    (finding,) = run(tmp_path / "repo", offline=True, vuln_db=db).findings
    assert (finding.rule_id, finding.severity, finding.line) == ("MLS205", Severity.CRITICAL, 1)
    assert finding.details["smallest_fix"] is None and "no fixed version" in finding.message


def test_lfs_pointer_named_like_a_manifest_is_not_parsed(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 123\n",
        encoding="utf-8",
    )
    report = run(tmp_path, offline=True, vuln_db=OSV_MINI)
    assert not [f for f in report.findings if f.rule_id.startswith("MLS2")]
