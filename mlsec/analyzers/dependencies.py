"""Dependency audit: every Python manifest, known vulnerabilities online and offline.

Manifests are parsed by :mod:`mlsec.deps`; pinned versions are audited against the local OSV
database (``--vuln-db``, or the one ``mlsec db update`` cached, used with ``--offline``) or
online through pip-audit's services. Whatever could not be checked (unpinned ranges, URLs,
dependencies computed at run time, a service that did not answer) is a finding of its own:
the audit never reports "clean" for a package it did not check. Findings are shaped for a
user to act on: one per vulnerable package version, one per manifest for its unpinned
ranges (none when a lock file covers them), one per range whose floor allows known-vulnerable
releases, with inline ``# mlsec: ignore[...] reason`` comments attached as suppressions.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple

from mlsec.analyzers import AnalysisContext, Analyzer, AnalyzerResult
from mlsec.deps import manifest_kind, parse_manifests
from mlsec.errors import ConfigError, MlsecError
from mlsec.facts import Advisory, Dependency, DependencyFacts
from mlsec.findings import Finding, Severity
from mlsec.models.sniff import FileKind
from mlsec.walk import Target

if TYPE_CHECKING:  # the audit machinery is imported only when there are manifests
    from mlsec.deps.audit import Auditor, AuditOutcome, Package
    from mlsec.deps.manifest import InlineIgnore, ParsedManifest, Unauditable
    from mlsec.deps.osv import OsvRecord

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
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


# Rules whose findings need the vulnerability database (or service): with all of them
# deselected, the audit needs no database at all.
AUDIT_RULES = (
    "MLS200",
    "MLS201",
    "MLS202",
    "MLS203",
    "MLS204",
    "MLS205",
    "MLS206",
    "MLS220",
    "MLS221",
)
FLOOR_RULE = "MLS206"
DYNAMIC_RULE = "MLS207"
REASONLESS_IGNORE_RULE = "MLS208"
UNPINNED_RULE = "MLS210"


def _folder(path: str) -> str:
    return str(PurePosixPath(path).parent)


class _Coverage:
    """Which ranges a lock file (or a pinned requirements file) fixes.

    A lock file covers the manifests of its own folder and, for a uv workspace, the folders
    of the members it lists; a pinned requirements file covers its own folder (pip-compile's
    ``requirements.in`` beside ``requirements.txt``). The project's own packages (workspace
    members, the ``[project]`` name) are first-party: never unpinned dependencies."""

    def __init__(self, manifests: Sequence[ParsedManifest]) -> None:
        self.pinned: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.first_party: set[str] = set()
        for m in manifests:
            self.first_party.update(m.first_party)
            names = {d.name for d in m.dependencies if d.pinned}
            names.update(u.name for u in m.unauditable if u.name and m.lock)
            for folder in {_folder(m.path), *m.covers}:
                self.pinned[folder][m.path].update(names)

    def covered(self, manifest: ParsedManifest, name: str) -> bool:
        """Whether another manifest fixes ``name`` for ``manifest``'s folder."""
        if name in self.first_party:
            return True
        by_manifest = self.pinned.get(_folder(manifest.path), {})
        return any(name in names for path, names in by_manifest.items() if path != manifest.path)


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
            for line, raw in m.problems:
                # parser messages can run over lines (a caret under the error): one line here
                message = " ".join(raw.split())
                if len(message) > 300:
                    message = message[:297] + "..."
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
            for line, message in m.dynamic:
                findings.append(
                    ctx.finding(
                        DYNAMIC_RULE,
                        m.path,
                        f"{message}: these dependencies are only known by running {m.kind}, "
                        "which mlsec never does; they were not audited",
                        line=line,
                        key="dynamic:" + re.sub(r"\d+", "#", message),
                    )
                )
            for item in m.unauditable:
                if _own_code(item, manifests):
                    continue
                findings.append(self._unauditable(ctx, item))
        coverage = _Coverage(manifests)
        uncovered = self._uncovered(manifests, coverage)
        findings.extend(self._unpinned(ctx, uncovered, manifests))

        to_audit: dict[Package, list[Dependency]] = defaultdict(list)
        for m in manifests:
            for dep in m.dependencies:
                if dep.version is not None:
                    to_audit[(dep.name, dep.version)].append(dep)

        outcome = AuditOutcome(service="none")
        # The BOM carries the advisories (its vulnerabilities) whatever rules are selected.
        audit_wanted = options.build_bom or any(options.rule_enabled(r) for r in AUDIT_RULES)
        # Ranges alone are checked against an offline database when there is one (the
        # range-floor rule); they never make a scan need one, nor import pip-audit.
        ranged = [d for deps in uncovered.values() for d in deps] if _database_at_hand(ctx) else []
        if audit_wanted and (to_audit or ranged):
            auditor, stale = self._auditor(ctx, config)
            if to_audit:
                outcome = auditor.audit(to_audit)
            if stale is not None:
                sources = sorted({d.source for deps in to_audit.values() for d in deps})
                sources = sources or sorted({d.source for d in ranged})
                findings.append(ctx.finding("MLS222", sources[0], stale, key="stale-db"))
            records = getattr(auditor, "records", None)
            if records is not None and options.rule_enabled(FLOOR_RULE):
                findings.extend(self._floors(ctx, uncovered, records, config))
        findings.extend(self._vulnerable(ctx, to_audit, outcome))
        findings.extend(self._not_audited(ctx, to_audit, outcome))
        result.findings[:] = _apply_inline_ignores(ctx, findings, manifests)

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
        from mlsec.deps.osv import OsvDatabase

        options = ctx.options
        cache = options.cache_root()  # None: --no-cache
        database_path = options.vuln_db
        if database_path is None and options.offline:
            cached = options.data_root() / "osv"  # where `mlsec db update` keeps it
            if not (cached / "all.zip").is_file():
                raise MlsecError(
                    "offline dependency audit needs a vulnerability database, and none was "
                    f"given or found in {cached}",
                    hint="run `mlsec db update` where the network is available (it caches "
                    "osv.dev's PyPI export), or pass --vuln-db PATH (an OSV all.zip or a "
                    "directory of OSV records); or deselect the dependency rules "
                    "(--ignore MLS2)",
                )
            database_path = cached
        if database_path is not None:
            database = OsvDatabase(database_path, cache_dir=cache)
            info = database.summary()
            if info.records == 0:
                raise MlsecError(
                    f"the vulnerability database {database_path} holds no valid OSV record "
                    f"({info.bad_records} malformed): nothing could be audited against it",
                    hint="download it again with `mlsec db update`, or pass an OSV all.zip "
                    "or a directory of OSV records with --vuln-db",
                )
            stale = None
            age = info.age_days()
            if age is None:
                stale = (
                    f"The offline vulnerability database ({info.path.name}) has no record "
                    "with a `modified` date, so its age is unknown; advisories published "
                    "since it was made are not known to this audit"
                )
            elif config.max_db_age_days and age > config.max_db_age_days:
                stale = (
                    f"The offline vulnerability database ({info.path.name}, newest record "
                    f"modified {info.date:%Y-%m-%d}) is {int(age)} days old, more than "
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
                cache_dir=cache / "http" if cache is not None else None,
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
    def _uncovered(
        manifests: Sequence[ParsedManifest], coverage: _Coverage
    ) -> dict[str, list[Dependency]]:
        """Unpinned requirements no lock file fixes, by manifest; a package already listed
        for another manifest of the same folder is listed once."""
        out: dict[str, list[Dependency]] = {}
        listed: dict[str, set[str]] = defaultdict(set)
        for m in manifests:
            folder = _folder(m.path)
            kept: list[Dependency] = []
            for dep in m.dependencies:
                if dep.pinned or dep.name in listed[folder] or coverage.covered(m, dep.name):
                    continue
                listed[folder].add(dep.name)
                kept.append(dep)
            if kept:
                out[m.path] = kept
        return out

    @staticmethod
    def _unpinned(
        ctx: AnalysisContext,
        uncovered: Mapping[str, list[Dependency]],
        manifests: Sequence[ParsedManifest],
    ) -> list[Finding]:
        """One finding per manifest listing its unpinned requirements; a requirement whose
        line carries its own inline ignore of the rule gets a finding of its own (so the
        ignore applies to it alone)."""
        ignored = {
            (i.source, i.line)
            for m in manifests
            for i in m.ignores
            if any(UNPINNED_RULE.startswith(r) for r in i.rules)
        }
        out: list[Finding] = []
        for path, deps in uncovered.items():
            own = [d for d in deps if (d.source, d.line) in ignored]
            grouped = [d for d in deps if (d.source, d.line) not in ignored]
            for group in ([grouped] if grouped else []) + [[d] for d in own]:
                listed = ", ".join(f"{d.name} ({d.specifier or 'any version'})" for d in group)
                if len(group) == 1:
                    message = (
                        f"{group[0].name} is not pinned ({group[0].specifier or 'any version'}) "
                        "and no lock file beside it fixes the version: not audited"
                    )
                else:
                    message = (
                        f"{len(group)} requirements are not pinned and no lock file beside "
                        f"this manifest fixes their versions, so they were not audited: {listed}"
                    )
                out.append(
                    ctx.finding(
                        UNPINNED_RULE,
                        path,
                        message,
                        line=group[0].line,
                        key="unpinned" if group is grouped else group[0].name,
                        details={
                            "packages": [
                                {"name": d.name, "specifier": d.specifier, "line": d.line}
                                for d in group
                            ]
                        },
                    )
                )
        return out

    @staticmethod
    def _floors(
        ctx: AnalysisContext,
        uncovered: Mapping[str, list[Dependency]],
        records: Callable[[str], Sequence[OsvRecord]],
        config: DependencyConfig,
    ) -> list[Finding]:
        from mlsec.deps.osv import range_exposure

        ignore = set(config.ignore_vulns)
        out: list[Finding] = []
        for path, deps in uncovered.items():
            for dep in deps:
                kept = [r for r in records(dep.name) if not ignore.intersection((r.id, *r.aliases))]
                exposure = range_exposure(_pep440(dep.specifier), kept)
                if exposure is None:
                    continue
                wanted = f"{dep.name}{dep.specifier}" if dep.specifier else dep.name
                floor = (
                    f"`{dep.name}>={exposure.floor}` allows none"
                    if exposure.floor
                    else "no release above them is known to be free of advisories"
                )
                releases = _plural(exposure.vulnerable, "known-vulnerable release")
                named = ", ".join(exposure.ids[:5]) + (", ..." if len(exposure.ids) > 5 else "")
                out.append(
                    ctx.finding(
                        FLOOR_RULE,
                        path,
                        f"`{wanted}` allows {releases}, the lowest being {exposure.lowest} "
                        f"({named}); "
                        f"{floor} (releases known from the advisory records)",
                        line=dep.line,
                        key=dep.name,
                        details={
                            "package": dep.name,
                            "specifier": dep.specifier,
                            "lowest_allowed": exposure.lowest,
                            "vulnerable_releases": exposure.vulnerable,
                            "safe_floor": exposure.floor,
                            "advisories": list(exposure.ids),
                        },
                    )
                )
        return out

    @staticmethod
    def _vulnerable(
        ctx: AnalysisContext,
        to_audit: Mapping[Package, list[Dependency]],
        outcome: AuditOutcome,
    ) -> list[Finding]:
        """One finding per vulnerable package version, with every advisory and alias, at
        the first place it is pinned (every place is in ``details["locations"]``)."""
        out: list[Finding] = []
        for package, advisories in sorted(outcome.advisories.items()):
            name, version = package
            rule = rule_for(advisories)
            fix = outcome.smallest_fix.get(package)
            ids = [a.id for a in advisories]
            aliases = sorted({alias for a in advisories for alias in a.aliases})
            fix_text = f"upgrade to {fix}" if fix else "no fixed version is known"
            summary = advisories[0].summary
            if len(summary) > 160:
                summary = summary[:157].rstrip() + "..."
            locations = _locations(to_audit[package])
            (source, line), others = locations[0], locations[1:]
            also = (
                f" Also pinned in {', '.join(p for p, _ in others[:3])}"
                f"{' and more' if len(others) > 3 else ''}."
                if others
                else ""
            )
            message = (
                f"{name} {version} has {_plural(len(advisories), 'known vulnerability')} "
                f"({', '.join(ids)}"
                f"{'; aliases ' + ', '.join(aliases[:8]) if aliases else ''}"
                f"{', ...' if len(aliases) > 8 else ''}); {fix_text}. {summary}{also}"
            )
            details = {
                "package": name,
                "version": version,
                "smallest_fix": fix,
                "service": outcome.service,
                "advisories": [_advisory_json(a) for a in advisories],
                "locations": [{"path": p, "line": n} for p, n in locations],
            }
            out.append(
                ctx.finding(
                    rule, source, message, line=line, key=f"{name}=={version}", details=details
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
        answered_none = bool(to_audit) and len(outcome.unaudited) >= len(to_audit)
        failed_by_source: dict[str, list[str]] = defaultdict(list)
        reasons: dict[str, str] = {}
        for package, reason in sorted(outcome.unaudited.items()):
            name, version = package
            source, line = _locations(to_audit[package])[0]
            skipped = reason.startswith(("skipped", "version "))
            if skipped and not answered_none:
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
                if skipped:
                    reason = f"the service answered for none of the packages ({reason})"
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


def _pep440(specifier: str) -> str | list[str]:
    """A requirement's specifier as PEP 440 (Poetry's ``^``/``~``/``||`` translated)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        SpecifierSet(specifier)
        return specifier
    except InvalidSpecifier:
        pass
    from mlsec.deps.pyproject import poetry_specifiers

    return poetry_specifiers(specifier) or specifier


def _database_at_hand(ctx: AnalysisContext) -> bool:
    if ctx.options.vuln_db is not None:
        return True
    if not ctx.options.offline:
        return False
    return (ctx.options.data_root() / "osv" / "all.zip").is_file()


_LOCAL_TARGET = re.compile(r"^(?:-e|--editable)?\s*=?\s*(?:file:)?(?P<path>[^:\s]*)$")


def _own_code(item: Unauditable, manifests: Sequence[ParsedManifest]) -> bool:
    """Whether an unauditable requirement is the project's own code: a workspace member or
    project named in the tree, or an editable install / local path inside the scanned tree
    (``-e .``, ``-e file:.``, ``./packages/core``). That code is in the repository this scan
    reads, and its own manifests are audited; it is not a dependency to report."""
    if item.name is not None and any(item.name in m.first_party for m in manifests):
        return True
    if item.reason not in ("editable install", "local path"):
        return False
    match = _LOCAL_TARGET.match(item.text.strip())
    if match is None:
        return False
    target = match.group("path").split("#", 1)[0]
    for root in ("///${PROJECT_ROOT}/", "${PROJECT_ROOT}/"):  # PDM's spelling of the project
        if target.startswith(root):
            target = "./" + target[len(root) :]
    if not target or target.startswith(("/", "~", "\\")):
        return False
    folder = PurePosixPath(item.source).parent / target.replace("\\", "/")
    return ".." not in PurePosixPath(os.path.normpath(folder.as_posix())).parts


def _apply_inline_ignores(
    ctx: AnalysisContext, findings: Sequence[Finding], manifests: Sequence[ParsedManifest]
) -> list[Finding]:
    """Findings with the inline ignores of their line attached as suppressions.

    ``# mlsec: ignore[MLS201] reason`` suppresses (visibly: the finding stays in the report,
    marked ``inSource`` with the reason) the findings of that line whose rule id starts with
    a listed id. A comment without a reason suppresses nothing and is a finding itself."""
    from mlsec.findings import Suppression

    by_line: dict[tuple[str, int], list[InlineIgnore]] = defaultdict(list)
    out: list[Finding] = []
    for m in manifests:
        for ignore in m.ignores:
            if ignore.reason:
                by_line[(ignore.source, ignore.line)].append(ignore)
                continue
            out.append(
                ctx.finding(
                    REASONLESS_IGNORE_RULE,
                    ignore.source,
                    f"`# mlsec: ignore[{','.join(ignore.rules)}]` gives no reason, so it "
                    "suppresses nothing; add why the risk is accepted after the bracket",
                    line=ignore.line,
                    key="ignore:" + ",".join(ignore.rules),
                )
            )
    for finding in findings:
        if finding.line is not None and (finding.path, finding.line) in by_line:
            added = tuple(
                Suppression(
                    kind="inSource",
                    justification=ignore.reason,
                    source=f"{ignore.source}:{ignore.line}",
                )
                for ignore in by_line[(finding.path, finding.line)]
                if any(finding.rule_id.startswith(r) for r in ignore.rules)
            )
            if added:
                finding = finding._replace(suppressions=finding.suppressions + added)
        out.append(finding)
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
    # Lean: a finding per vulnerable version repeats its advisories, and that is most of the
    # JSON of a large audit. The summary is shortened and empty fields are left out; the
    # dependency facts carry each advisory whole, once.
    summary = advisory.summary
    if len(summary) > 120:
        summary = summary[:117].rstrip() + "..."
    out: dict[str, Any] = {"id": advisory.id, "aliases": list(advisory.aliases)}
    if summary:
        out["summary"] = summary
    out["fix_versions"] = list(advisory.fix_versions)
    if advisory.severity is not None:
        out["severity"] = advisory.severity.value
    if advisory.cvss_score is not None:
        out["cvss_score"] = advisory.cvss_score
        out["cvss_vector"] = advisory.cvss_vector
    return out


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
