"""Dependency audit: every Python manifest, known vulnerabilities online and offline.

Manifests are parsed by :mod:`mlsec.deps`; pinned versions are audited against the local OSV
database (``--vuln-db``, or the one ``mlsec db update`` cached, used with ``--offline``) or
online through pip-audit's services. Whatever could not be checked (unpinned ranges, URLs,
a service that did not answer) is a finding of its own: the audit never reports "clean" for
a package it did not check.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple

from mlsec.analyzers import AnalysisContext, Analyzer, AnalyzerResult
from mlsec.deps import manifest_kind, parse_manifests
from mlsec.errors import ConfigError, MlsecError
from mlsec.facts import Advisory, Dependency, DependencyFacts
from mlsec.findings import Finding, Severity
from mlsec.sniff import FileKind
from mlsec.walk import Target

if TYPE_CHECKING:  # the audit machinery is imported only when there are manifests
    from mlsec.deps.audit import Auditor, AuditOutcome, Package
    from mlsec.deps.manifest import ParsedManifest, Unauditable

_SEVERITY_RULES = {
    Severity.CRITICAL: "MLS200",
    Severity.HIGH: "MLS201",
    Severity.MEDIUM: "MLS202",
    Severity.LOW: "MLS203",
    Severity.INFO: "MLS203",
}
UNSCORED_RULE = "MLS204"
MALICIOUS_RULE = "MLS205"


class DependencyConfig(NamedTuple):
    """The ``[dependencies]`` configuration section."""

    ignore_vulns: tuple[str, ...] = ()
    dev: bool = True
    service: str = "osv"
    timeout: int = 15
    max_db_age_days: int = 30

    @classmethod
    def from_section(cls, section: Mapping[str, Any], origin: Path | None) -> DependencyConfig:
        where = f"{origin}: " if origin else ""
        prefix = "[tool.mlsec.dependencies]" if origin and origin.name == "pyproject.toml" else ""
        prefix = prefix or "[dependencies]"
        changes: dict[str, Any] = {}
        for key, value in section.items():
            at = f"{where}{prefix} {key}"
            if key == "ignore-vulns":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ConfigError(f"{at}: expected a list of advisory ids")
                changes["ignore_vulns"] = tuple(v.strip() for v in value)
            elif key == "dev":
                if not isinstance(value, bool):
                    raise ConfigError(f"{at}: expected true or false")
                changes["dev"] = value
            elif key == "service":
                if value not in ("osv", "pypi"):
                    raise ConfigError(f"{at}: expected 'osv' or 'pypi', got {value!r}")
                changes["service"] = value
            elif key in ("timeout", "max-db-age-days"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ConfigError(f"{at}: expected a whole number, got {value!r}")
                if key == "timeout" and value == 0:
                    raise ConfigError(f"{at}: a timeout must be at least 1 second")
                changes[key.replace("-", "_")] = value
            else:
                raise ConfigError(
                    f"{at}: unknown key",
                    hint="known keys: dev, ignore-vulns, max-db-age-days, service, timeout",
                )
        return cls()._replace(**changes)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class DependencyAnalyzer(Analyzer):
    name = "dependencies"
    description = "Auditing dependencies"

    def analyze(self, targets: Sequence[Target], ctx: AnalysisContext) -> AnalyzerResult:
        options = ctx.options
        config = DependencyConfig.from_section(options.section("dependencies"), options.config_file)
        # A Git LFS pointer is not the manifest (the walker reports it as MLS903).
        files = [
            (t.path, t.relpath)
            for t in targets
            if manifest_kind(t.relpath) and t.kind is not FileKind.LFS_POINTER
        ]
        if not files:
            return AnalyzerResult(facts=DependencyFacts())
        from mlsec.deps.audit import AuditOutcome

        result = AnalyzerResult()
        manifests = parse_manifests(files, ctx.root)
        if not config.dev:
            for m in manifests:
                m.dependencies = [d for d in m.dependencies if not d.dev]
                m.unauditable = [u for u in m.unauditable if not u.dev]
        findings = result.findings
        for m in manifests:
            for line, message in m.problems:
                findings.append(
                    ctx.finding(
                        "MLS212",
                        m.path,
                        f"{m.kind}: {message}",
                        line=line,
                        # digits out: positions inside the message must not change identity
                        key="problem:" + re.sub(r"\d+", "#", message),
                    )
                )
            for item in m.unauditable:
                findings.append(self._unauditable(ctx, item))
        findings.extend(self._unpinned(ctx, manifests))

        to_audit: dict[Package, list[Dependency]] = defaultdict(list)
        for m in manifests:
            for dep in m.dependencies:
                if dep.version is not None:
                    to_audit[(dep.name, dep.version)].append(dep)

        outcome = AuditOutcome(service="none")
        if to_audit:
            auditor, stale = self._auditor(ctx, config)
            outcome = auditor.audit(to_audit)
            if stale is not None:
                first = sorted({d.source for deps in to_audit.values() for d in deps})[0]
                findings.append(ctx.finding("MLS222", first, stale, key="stale-db"))
        findings.extend(self._vulnerable(ctx, to_audit, outcome))
        findings.extend(self._not_audited(ctx, to_audit, outcome))

        dependencies: list[Dependency] = []
        for m in manifests:
            dependencies.extend(m.dependencies)
            dependencies.extend(_as_dependency(u) for u in m.unauditable)
        result.facts = DependencyFacts(
            dependencies=tuple(dependencies),
            advisories=tuple(a for adv in outcome.advisories.values() for a in adv),
            service=outcome.service if to_audit else None,
            unaudited=tuple(f"{n}=={v}" for n, v in sorted(outcome.unaudited)),
        )
        ctx.progress(len(targets))
        return result

    # -- which service -------------------------------------------------------------------------
    def _auditor(
        self, ctx: AnalysisContext, config: DependencyConfig
    ) -> tuple[Auditor, str | None]:
        from mlsec.deps.osv import OsvDatabase, default_database_dir
        from mlsec.hashing import default_cache_dir

        options = ctx.options
        database_path = options.vuln_db
        if database_path is None and options.offline:
            cached = default_database_dir()
            if not (cached / "all.zip").is_file():
                raise MlsecError(
                    "offline dependency audit needs a vulnerability database, and none was "
                    f"given or found in {cached}",
                    hint="run `mlsec db update` where the network is available (it caches "
                    "osv.dev's PyPI export), or pass --vuln-db PATH (an OSV all.zip or a "
                    "directory of OSV records)",
                )
            database_path = cached
        if database_path is not None:
            database = OsvDatabase(database_path, cache_dir=default_cache_dir())
            info = database.summary()
            stale = None
            age = info.age_days()
            if config.max_db_age_days and age is not None and age > config.max_db_age_days:
                stale = (
                    f"The offline vulnerability database ({info.path.name}, newest data "
                    f"{info.date:%Y-%m-%d}) is {int(age)} days old, more than "
                    f"max-db-age-days = {config.max_db_age_days}; advisories published since "
                    "are not known to this audit"
                )
            from mlsec.deps.audit import LocalDatabaseAuditor

            return LocalDatabaseAuditor(database, ignore=config.ignore_vulns), stale
        try:
            from mlsec.deps.service import PipAuditAuditor
        except MlsecError as exc:
            return _Unavailable(exc.message), None
        return (
            PipAuditAuditor(
                config.service,
                cache_dir=default_cache_dir() / "http",
                timeout=config.timeout,
                ignore=config.ignore_vulns,
            ),
            None,
        )

    # -- findings ------------------------------------------------------------------------------
    @staticmethod
    def _unauditable(ctx: AnalysisContext, item: Unauditable) -> Finding:
        label = item.name or item.text
        return ctx.finding(
            "MLS211",
            item.source,
            f"{label}: {item.reason} ({item.text}); no vulnerability database can audit it",
            line=item.line,
            key=f"{label}:{item.reason}",
            details={"requirement": item.text, "reason": item.reason},
        )

    @staticmethod
    def _unpinned(ctx: AnalysisContext, manifests: Sequence[ParsedManifest]) -> list[Finding]:
        # A range is covered when a lock file or pinned requirements file in the same folder
        # fixes that package's version (pyproject.toml + uv.lock, requirements.in + .txt).
        pinned_here: dict[str, set[str]] = defaultdict(set)
        for m in manifests:
            folder = str(PurePosixPath(m.path).parent)
            pinned_here[folder].update(d.name for d in m.dependencies if d.pinned)
        out: list[Finding] = []
        for m in manifests:
            folder = str(PurePosixPath(m.path).parent)
            seen: set[str] = set()
            for dep in m.dependencies:
                if dep.pinned or dep.name in pinned_here[folder] or dep.name in seen:
                    continue
                seen.add(dep.name)
                wanted = dep.specifier or "any version"
                out.append(
                    ctx.finding(
                        "MLS210",
                        dep.source,
                        f"{dep.name} is not pinned ({wanted}) and no lock file beside it fixes "
                        "the version: not audited",
                        line=dep.line,
                        key=dep.name,
                        details={"specifier": dep.specifier},
                    )
                )
        return out

    @staticmethod
    def _vulnerable(
        ctx: AnalysisContext,
        to_audit: Mapping[Package, list[Dependency]],
        outcome: AuditOutcome,
    ) -> list[Finding]:
        out: list[Finding] = []
        for package, advisories in sorted(outcome.advisories.items()):
            name, version = package
            rule = rule_for(advisories)
            fix = outcome.smallest_fix.get(package)
            ids = [a.id for a in advisories]
            fix_text = f"upgrade to {fix}" if fix else "no fixed version is known"
            summary = advisories[0].summary
            if len(summary) > 160:
                summary = summary[:157].rstrip() + "..."
            message = (
                f"{name} {version} has {_plural(len(advisories), 'known vulnerability')} "
                f"({', '.join(ids)}); {fix_text}. {summary}"
            ).replace("vulnerabilitys", "vulnerabilities")
            details = {
                "package": name,
                "version": version,
                "smallest_fix": fix,
                "service": outcome.service,
                "advisories": [_advisory_json(a) for a in advisories],
            }
            for source, line in _locations(to_audit[package]):
                out.append(
                    ctx.finding(
                        rule,
                        source,
                        message,
                        line=line,
                        key=f"{name}=={version}",
                        details=details,
                    )
                )
        return out

    @staticmethod
    def _not_audited(
        ctx: AnalysisContext,
        to_audit: Mapping[Package, list[Dependency]],
        outcome: AuditOutcome,
    ) -> list[Finding]:
        out: list[Finding] = []
        failed_by_source: dict[str, list[str]] = defaultdict(list)
        reasons: dict[str, str] = {}
        for package, reason in sorted(outcome.unaudited.items()):
            name, version = package
            for source, line in _locations(to_audit[package]):
                if reason.startswith(("skipped", "version ")):
                    out.append(
                        ctx.finding(
                            "MLS221",
                            source,
                            f"{name} {version} was not audited: {reason}",
                            line=line,
                            key=f"{name}=={version}",
                        )
                    )
                else:
                    failed_by_source[source].append(f"{name}=={version}")
                    reasons.setdefault(source, reason)
        for source, packages in sorted(failed_by_source.items()):
            out.append(
                ctx.finding(
                    "MLS220",
                    source,
                    f"{_plural(len(packages), 'package')} in this manifest were not audited "
                    f"({reasons[source]}); they are not known to be free of vulnerabilities",
                    key="unaudited",
                    details={"packages": packages, "reason": reasons[source]},
                )
            )
        return out


def rule_for(advisories: Sequence[Advisory]) -> str:
    """The rule for one vulnerable package version: its worst scored advisory, unless an
    unscored one may be worse (then the unscored rule, which counts as high). A known
    malicious package (an OSV MAL- record) has its own rule."""
    if any(i.startswith("MAL-") for a in advisories for i in (a.id, *a.aliases)):
        return MALICIOUS_RULE
    scored = [a.severity for a in advisories if a.severity is not None]
    worst = max(scored, key=lambda s: s.rank) if scored else None
    unscored = len(scored) < len(advisories)
    if worst is None or (unscored and worst.rank < Severity.HIGH.rank):
        return UNSCORED_RULE
    return _SEVERITY_RULES[worst]


def _locations(deps: Sequence[Dependency]) -> list[tuple[str, int | None]]:
    """One location per manifest (its first line) for the same package version."""
    first: dict[str, int | None] = {}
    for dep in deps:
        if dep.source not in first:
            first[dep.source] = dep.line
    return sorted(first.items())


def _advisory_json(advisory: Advisory) -> dict[str, Any]:
    return {
        "id": advisory.id,
        "aliases": list(advisory.aliases),
        "summary": advisory.summary,
        "fix_versions": list(advisory.fix_versions),
        "severity": advisory.severity.value if advisory.severity else None,
        "cvss_vector": advisory.cvss_vector,
        "cvss_score": advisory.cvss_score,
    }


def _as_dependency(item: Unauditable) -> Dependency:
    return Dependency(
        name=item.name or item.text,
        version=None,
        specifier=item.text,
        source=item.source,
        line=item.line,
        pinned=False,
        dev=item.dev,
    )


class _Unavailable:
    """An auditor for when pip-audit itself cannot be used: everything is unaudited."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def audit(self, packages: Any) -> AuditOutcome:
        from mlsec.deps.audit import AuditOutcome

        outcome = AuditOutcome(service="unavailable")
        for package in packages:
            outcome.unaudited[package] = self.reason
        outcome.notes.append(self.reason)
        return outcome
