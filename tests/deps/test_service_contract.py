"""Contract test for the pip-audit adapter (pip-audit's modules are private).

Checks the part of pip-audit's API that mlsec.deps.service relies on: the service classes and
their constructor arguments, ``ResolvedDependency``/``SkippedDependency``, the fields of
``VulnerabilityResult``, alias merging, and the exceptions raised when the network is down.
The HTTP session is replaced by a fake, so nothing here touches the network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from packaging.version import Version

from mlsec.deps import service
from mlsec.deps.osv import OsvDatabase
from mlsec.findings import Severity

from .conftest import OSV_MINI

VECTOR = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"
OSV_ANSWER = {
    "vulns": [
        {
            "id": "GHSA-xxxx-yyyy-zzzz",
            "aliases": ["CVE-2022-45907", "PYSEC-2022-43015"],
            "summary": "eval in torch.jit annotations",
            "severity": [{"type": "CVSS_V3", "score": VECTOR}],
            "affected": [
                {
                    "package": {"name": "torch", "ecosystem": "PyPI"},
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.13.1"}]}
                    ],
                }
            ],
        },
        {
            "id": "PYSEC-2022-43015",
            "aliases": ["CVE-2022-45907"],
            "details": "duplicate record of the same issue",
            "affected": [
                {
                    "package": {"name": "torch", "ecosystem": "PyPI"},
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.13.1"}]}
                    ],
                }
            ],
        },
        {
            "id": "GHSA-gone-gone-gone",
            "withdrawn": "2023-01-01T00:00:00Z",
            "affected": [],
        },
    ]
}


class _Response:
    def __init__(self, payload: Any, status: int = 200) -> None:
        self.payload = payload
        self.status_code = status

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise requests.HTTPError(response=self)  # type: ignore[arg-type]

    def json(self) -> Any:
        return self.payload


class _Session:
    def __init__(self, answer: Any = None, error: Exception | None = None) -> None:
        self.answer = answer
        self.error = error
        self.posts: list[dict[str, Any]] = []

    def post(self, url: str, data: str, timeout: float | None) -> _Response:
        self.posts.append(json.loads(data))
        if self.error:
            raise self.error
        return _Response(self.answer)


def test_pip_audit_surface_exists() -> None:
    from pip_audit._service import (
        OsvService,
        PyPIService,
        ResolvedDependency,
        SkippedDependency,
        VulnerabilityResult,
    )

    dep = ResolvedDependency("Torch", Version("1.13.0"))
    assert dep.canonical_name == "torch" and not dep.is_skipped()
    assert SkippedDependency(name="x", skip_reason="r").is_skipped()
    fields = set(VulnerabilityResult.__dataclass_fields__)
    assert {"id", "description", "fix_versions", "aliases"} <= fields
    OsvService(cache_dir=None, timeout=1)
    PyPIService(cache_dir=None, timeout=1)


def _auditor(monkeypatch, session: _Session, tmp_path: Path) -> service.PipAuditAuditor:
    """An auditor whose pip-audit OsvService gets ``session`` where it creates its own."""
    import pip_audit._service.osv as pip_audit_osv

    monkeypatch.setattr(pip_audit_osv, "caching_session", lambda *args, **kwargs: session)
    return service.PipAuditAuditor("osv", cache_dir=tmp_path / "http", timeout=3, workers=2)


def test_osv_service_results_are_adapted(monkeypatch, tmp_path: Path) -> None:
    session = _Session(OSV_ANSWER)
    outcome = _auditor(monkeypatch, session, tmp_path).audit([("torch", "1.13.0")])
    assert session.posts == [
        {"package": {"name": "torch", "ecosystem": "PyPI"}, "version": "1.13.0"}
    ]
    (advisory,) = outcome.advisories[("torch", "1.13.0")]  # aliases merged, withdrawn skipped
    assert advisory.id == "PYSEC-2022-43015"
    assert set(advisory.aliases) == {"CVE-2022-45907", "GHSA-xxxx-yyyy-zzzz"}
    assert advisory.fix_versions == ("1.13.1",)
    # pip-audit drops severities; the adapter takes them from the raw OSV answer
    assert advisory.severity is Severity.HIGH and advisory.cvss_score == 7.5
    assert advisory.cvss_vector == VECTOR
    assert outcome.smallest_fix[("torch", "1.13.0")] == "1.13.1"
    assert outcome.unaudited == {}


def test_ignore_list_applies_to_aliases(monkeypatch, tmp_path: Path) -> None:
    auditor = _auditor(monkeypatch, _Session(OSV_ANSWER), tmp_path)
    auditor.ignore = frozenset({"CVE-2022-45907"})
    assert auditor.audit([("torch", "1.13.0")]).advisories == {}


@pytest.mark.parametrize(
    "error",
    [
        requests.ConnectTimeout("timed out"),
        requests.ConnectionError("Name or service not known"),
        requests.ReadTimeout("read timed out"),
    ],
)
def test_network_failures_leave_packages_unaudited(monkeypatch, tmp_path, error) -> None:
    session = _Session(error=error)
    packages = [("torch", "1.13.0"), ("mlflow", "2.9.0"), ("numpy", "1.0")]
    outcome = _auditor(monkeypatch, session, tmp_path).audit(packages)
    assert outcome.advisories == {}
    assert set(outcome.unaudited) == set(packages)
    assert all("osv service unavailable" in r for r in outcome.unaudited.values())
    assert len(session.posts) <= 2  # the first failure stops the rest (2 workers)
    assert outcome.notes


def test_multi_interval_fix_from_raw_records(monkeypatch, tmp_path: Path) -> None:
    answer = {
        "vulns": [
            {
                "id": "PYSEC-A",
                "affected": [
                    {
                        "package": {"name": "tensorflow", "ecosystem": "PyPI"},
                        "ranges": [
                            {
                                "type": "ECOSYSTEM",
                                "events": [
                                    {"introduced": "2.3.0"},
                                    {"fixed": "2.3.4"},
                                    {"introduced": "2.4.0"},
                                    {"fixed": "2.4.3"},
                                ],
                            }
                        ],
                    }
                ],
            },
            {
                "id": "PYSEC-B",
                "affected": [
                    {
                        "package": {"name": "tensorflow", "ecosystem": "PyPI"},
                        "ranges": [
                            {
                                "type": "ECOSYSTEM",
                                "events": [{"introduced": "0"}, {"fixed": "2.4.1"}],
                            }
                        ],
                    }
                ],
            },
        ]
    }
    outcome = _auditor(monkeypatch, _Session(answer), tmp_path).audit([("tensorflow", "2.3.0")])
    # 2.3.4 fixes A but not B; 2.4.1 fixes B but is inside A's second interval
    assert outcome.smallest_fix[("tensorflow", "2.3.0")] == "2.4.3"
    assert {a.id for a in outcome.advisories[("tensorflow", "2.3.0")]} == {"PYSEC-A", "PYSEC-B"}


def test_invalid_version_is_unaudited_not_queried(monkeypatch, tmp_path: Path) -> None:
    session = _Session(OSV_ANSWER)
    outcome = _auditor(monkeypatch, session, tmp_path).audit([("torch", "not-a-version")])
    assert session.posts == []
    assert outcome.unaudited[("torch", "not-a-version")].startswith("version ")


def test_our_database_as_a_pip_audit_service(isolated_cache) -> None:
    from pip_audit._service import ResolvedDependency, VulnerabilityService

    svc = service.OsvDatabaseService(OsvDatabase(OSV_MINI, cache_dir=isolated_cache))
    assert isinstance(svc, VulnerabilityService)
    spec, results = svc.query(ResolvedDependency("MLflow", Version("2.9.0")))
    assert spec.name == "MLflow"
    assert {r.id for r in results} == {
        "PYSEC-2023-252",
        "PYSEC-2023-253",
        "PYSEC-2023-260",
        "PYSEC-2024-51",
    }
    assert all(isinstance(v, Version) for r in results for v in r.fix_versions)
    ((_, clean),) = list(svc.query_all(iter([ResolvedDependency("mlflow", Version("2.10.1"))])))
    assert clean == []


IMPORT_PROBE = """
import subprocess, sys
def refuse(*args, **kwargs):
    raise AssertionError(f"subprocess started at import: {args!r}")
subprocess.Popen.__init__ = refuse
import mlsec.deps.service
import pip_audit._cache
assert str(pip_audit._cache._PIP_VERSION) not in ("", "0"), pip_audit._cache._PIP_VERSION
assert "pip_api" not in sys.modules  # the stand-in is gone; a later import gets the real one
"""

OFFLINE_PROBE = """
import sys
from pathlib import Path
from mlsec.config import build_options
from mlsec.scan import scan
root = Path(sys.argv[1])
scan(build_options(root, use_git=False, offline=True, vuln_db=Path(sys.argv[2])))
assert not any(m.startswith(("pip_audit", "pip_api")) for m in sys.modules), "imported"
"""


def test_importing_the_services_runs_no_pip_subprocess() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_an_offline_scan_never_imports_pip_audit(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "requirements.txt").write_text("torch==1.13.0\nnumpy>=1\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-c", OFFLINE_PROBE, str(tmp_path), str(OSV_MINI)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


class _GetSession:
    """A PyPI JSON API stand-in: the same answer for every release."""

    def __init__(self, answer: Any, status: int = 200) -> None:
        self.answer = answer
        self.status = status
        self.gets: list[str] = []

    def get(self, url: str, timeout: float | None) -> _Response:
        self.gets.append(url)
        return _Response(self.answer, self.status)


def _pypi_auditor(monkeypatch, session: _GetSession, tmp_path: Path) -> service.PipAuditAuditor:
    import pip_audit._service.pypi as pip_audit_pypi

    monkeypatch.setattr(pip_audit_pypi, "caching_session", lambda *args, **kwargs: session)
    return service.PipAuditAuditor("pypi", cache_dir=tmp_path / "http", timeout=3, workers=2)


PYPI_RELEASE = {
    "info": {"name": "torch", "version": "1.13.0"},
    "vulnerabilities": [
        {
            "id": "PYSEC-2022-43015",
            "aliases": ["CVE-2022-45907"],
            "details": "eval in torch.jit annotations",
            "fixed_in": ["1.13.1"],
            "withdrawn": None,
        }
    ],
}


def test_pypi_service_answers_are_used(monkeypatch, tmp_path: Path) -> None:
    outcome = _pypi_auditor(monkeypatch, _GetSession(PYPI_RELEASE), tmp_path).audit(
        [("torch", "1.13.0")]
    )
    (advisory,) = outcome.advisories[("torch", "1.13.0")]
    assert advisory.id == "PYSEC-2022-43015" and outcome.unaudited == {}


@pytest.mark.parametrize(("answer", "status"), [({}, 200), (None, 404), ("<html>", 200)])
def test_pypi_service_that_answers_nothing_leaves_packages_unaudited(
    monkeypatch, tmp_path: Path, answer: Any, status: int
) -> None:
    packages = [("torch", "1.13.0"), ("mlflow", "2.9.0")]
    outcome = _pypi_auditor(monkeypatch, _GetSession(answer, status), tmp_path).audit(packages)
    assert outcome.advisories == {}
    assert set(outcome.unaudited) == set(packages)
