"""The adapter to pip-audit's vulnerability services (its modules are private: ``_service``).

pip-audit has no public Python API, so everything we use of it goes through this module and a
contract test (``tests/deps/test_service_contract.py``) checks that surface; ``pyproject.toml``
pins a compatible range. Used for:

* online audits with pip-audit's ``OsvService`` or ``PyPIService``: queries are deduplicated,
  (with the OSV service, severities and the smallest fix come from the raw records),
  run on a few threads, cached on disk (pip-audit's HTTP cache under our cache directory) and
  time out; the first connection failure stops the remaining queries, and every package left
  unanswered is reported as unaudited, never as clean;
* :class:`OsvDatabaseService`, our offline database as a pip-audit ``VulnerabilityService`` for
  code built on pip-audit's interface. (The scan's offline path uses the database directly,
  see :mod:`mlsec.deps.audit`, to avoid importing pip-audit.)
"""

from __future__ import annotations

import re
import sys
import threading
import types
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlsec.deps.audit import AuditOutcome, Package
from mlsec.deps.osv import (
    OsvDatabase,
    OsvRecord,
    compact_records,
    group_severity,
    parse_version,
    smallest_fix,
    version_key,
)
from mlsec.errors import MlsecError
from mlsec.facts import Advisory


def _pip_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pip")
    except PackageNotFoundError:
        return "0"


class _PipApiStandIn(types.ModuleType):
    """What pip-audit's services read of ``pip_api`` at import: the pip version.

    ``import pip_api`` runs ``pip --version`` in a subprocess (0.25 s, and a failure where pip
    is absent) only to learn a version that the installed distribution's metadata gives for
    free. pip-audit's cache module reads nothing else of it, and only to decide whether to
    share pip's HTTP cache, which mlsec never does (it passes its own cache directory)."""

    def __init__(self) -> None:
        super().__init__("pip_api")
        self.PIP_VERSION = _pip_version()


_STAND_IN = None
if "pip_api" not in sys.modules:
    _STAND_IN = sys.modules["pip_api"] = _PipApiStandIn()
try:  # without pip-audit (or a part of it), say so, do not crash
    import requests
    from pip_audit._service import (
        OsvService,
        PyPIService,
        ResolvedDependency,
        ServiceError,
        SkippedDependency,
        VulnerabilityResult,
        VulnerabilityService,
    )
    from pip_audit._service.interface import Dependency as PipAuditDependency
except Exception as exc:  # pragma: no cover - depends on the installation
    raise MlsecError(
        f"pip-audit cannot be used in this environment ({type(exc).__name__}: {exc})",
        hint="install pip and pip-audit>=2.7,<3 beside mlsec, or audit offline with "
        "--offline --vuln-db PATH",
    ) from None
finally:
    # Later imports of pip_api (by anything else in this process) get the real module.
    if _STAND_IN is not None and sys.modules.get("pip_api") is _STAND_IN:
        del sys.modules["pip_api"]

SERVICES = ("osv", "pypi")
DEFAULT_TIMEOUT = 15
WORKERS = 8


class _RecordingSession:
    """pip-audit's HTTP session, keeping the last raw answer.

    pip-audit's results drop the records' severity vectors and ranges; the raw OSV answer
    gives online findings the same severity and smallest-fix computation as the offline ones.
    The raw PyPI answer shows whether it was PyPI's record of the release at all: pip-audit
    reads an answer without a ``vulnerabilities`` key (a mirror or proxy answering ``{}``) as
    "no vulnerabilities"."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.answer: Any = None

    def post(self, *args: Any, **kwargs: Any) -> Any:
        self.answer = None
        response = self._session.post(*args, **kwargs)
        try:
            self.answer = response.json()
        except ValueError:
            self.answer = None
        return response

    def get(self, *args: Any, **kwargs: Any) -> Any:
        self.answer = None
        response = self._session.get(*args, **kwargs)
        try:
            self.answer = response.json()
        except ValueError:
            self.answer = None
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _raw_records(name: str, answer: Any) -> list[OsvRecord]:
    if not isinstance(answer, dict) or not isinstance(answer.get("vulns"), list):
        return []
    records: list[OsvRecord] = []
    for vuln in answer["vulns"]:
        compact = compact_records(vuln).get(name)
        if compact is not None:
            records.append(OsvRecord.from_compact(compact))
    return records


def _with_severity(advisory: Advisory, records: list[OsvRecord]) -> Advisory:
    ids = {advisory.id, *advisory.aliases}
    same = [r for r in records if ids.intersection((r.id, *r.aliases))]
    severity, vector, score = group_severity(same)
    if severity is None:
        return advisory
    return advisory._replace(severity=severity, cvss_vector=vector, cvss_score=score)


def _to_advisory(name: str, version: str, result: VulnerabilityResult) -> Advisory:
    current = parse_version(version)
    fixes = sorted(
        {str(v) for v in result.fix_versions if current is None or v > current},
        key=version_key,
    )
    ids = sorted({str(result.id), *map(str, result.aliases)})
    primary = str(result.id)
    return Advisory(
        id=primary,
        aliases=tuple(i for i in ids if i != primary),
        package=name,
        version=version,
        summary=" ".join(str(result.description).split())[:300],
        fix_versions=tuple(fixes),
        # pip-audit's results carry no severity: the finding says "unscored".
        severity=None,
    )


def _merge_aliases(results: list[VulnerabilityResult]) -> list[VulnerabilityResult]:
    merged: list[VulnerabilityResult] = []
    for result in results:
        for i, kept in enumerate(merged):
            if kept.alias_of(result):
                merged[i] = kept.merge_aliases(result)
                break
        else:
            merged.append(result)
    return merged


def smallest_common_fix(advisories: list[Advisory]) -> str | None:
    """Without ranges, the best estimate: the largest of each advisory's first fix."""
    firsts = [a.fix_versions[0] for a in advisories if a.fix_versions]
    if len(firsts) != len(advisories) or not firsts:
        return None
    return max(firsts, key=version_key)


class PipAuditAuditor:
    """Online audit through one of pip-audit's services."""

    def __init__(
        self,
        service: str = "osv",
        *,
        cache_dir: Path | None = None,
        timeout: int = DEFAULT_TIMEOUT,
        ignore: Iterable[str] = (),
        workers: int = WORKERS,
    ) -> None:
        if service not in SERVICES:
            raise MlsecError(f"unknown vulnerability service {service!r} (use osv or pypi)")
        self.service_name = service
        self.cache_dir = cache_dir
        self.timeout = timeout
        self.ignore = frozenset(ignore)
        self.workers = workers
        self._local = threading.local()

    def _service(self) -> VulnerabilityService:
        service = getattr(self._local, "service", None)
        if service is None:
            cls: Any = OsvService if self.service_name == "osv" else PyPIService
            service = cls(cache_dir=self.cache_dir, timeout=self.timeout)
            service.session = _RecordingSession(service.session)
            self._local.service = service
        return service

    def audit(self, packages: Iterable[Package]) -> AuditOutcome:
        outcome = AuditOutcome(service=f"pip-audit:{self.service_name}")
        todo = sorted(set(packages))
        failed = threading.Event()
        failure: list[str] = []

        Answer = tuple[list[VulnerabilityResult], list[OsvRecord]]

        def one(package: Package) -> tuple[Package, Answer | str]:
            if failed.is_set():
                return package, failure[0] if failure else "service unavailable"
            name, version = package
            parsed = parse_version(version)
            if parsed is None:
                return package, f"version {version!r} is not a PEP 440 version"
            try:
                svc = self._service()
                dep, results = svc.query(ResolvedDependency(name, parsed))
            except (ServiceError, requests.RequestException, OSError) as exc:
                reason = f"{self.service_name} service unavailable: {_describe(exc)}"
                if not failure:
                    failure.append(reason)
                failed.set()
                return package, reason
            except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
                # pip-audit reading an answer that is not what the service sends (a captive
                # portal, a broken mirror): this package is not audited, the others go on
                kind = type(exc).__name__
                return package, f"{self.service_name} service gave an unreadable answer ({kind})"
            if isinstance(dep, SkippedDependency):
                return package, f"skipped by the service: {dep.skip_reason}"
            answer = getattr(getattr(svc, "session", None), "answer", None)
            if self.service_name == "pypi":
                if not (isinstance(answer, dict) and isinstance(answer.get("info"), dict)):
                    # not PyPI's record of this release: "no vulnerabilities" is not known
                    return (
                        package,
                        "skipped by the service: its answer is not a PyPI release record",
                    )
                return package, (results, [])
            return package, (results, _raw_records(name, answer))

        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            for package, answer in pool.map(one, todo):
                if isinstance(answer, str):
                    outcome.unaudited[package] = answer
                    continue
                results, records = answer
                kept = [
                    _with_severity(_to_advisory(package[0], package[1], r), records)
                    for r in _merge_aliases(results)
                    if not r.has_any_id(set(self.ignore))
                ]
                if kept:
                    outcome.advisories[package] = kept
                    outcome.smallest_fix[package] = (
                        smallest_fix(package[1], kept, records)
                        if records
                        else smallest_common_fix(kept)
                    )
        if failure:
            outcome.notes.append(failure[0])
        return outcome


def _describe(exc: BaseException) -> str:
    """A one-line reason for the user (requests' messages nest several exceptions deep)."""
    if isinstance(exc, requests.Timeout):
        return "no answer within the timeout"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        host = re.search(r"host='([^']+)'", text)
        where = host.group(1) if host else "the service"
        if "resolve" in text.lower():
            return f"cannot resolve {where} (no network or DNS)"
        return f"cannot connect to {where}"
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, ServiceError) and not str(exc) and cause is not None:
        text = str(cause) or type(cause).__name__
    return text.splitlines()[0][:200]


class OsvDatabaseService(VulnerabilityService):  # type: ignore[misc]
    """Our local OSV database behind pip-audit's ``VulnerabilityService`` interface."""

    def __init__(self, database: OsvDatabase) -> None:
        self.database = database

    def query(self, spec: PipAuditDependency) -> tuple[PipAuditDependency, list[Any]]:
        if spec.is_skipped():
            return spec, []
        version = str(spec.version)
        results: list[VulnerabilityResult] = []
        for advisory in self.database.advisories(spec.canonical_name, version):
            results.append(
                VulnerabilityResult(
                    id=advisory.id,
                    description=advisory.summary,
                    fix_versions=[v for f in advisory.fix_versions if (v := parse_version(f))],
                    aliases=set(advisory.aliases),
                )
            )
        return spec, results
