"""The library entry point: ``scan(options) -> ScanReport`` (and ``scan_paths`` for several).

Report paths are relative to the repository root (``options.base``), whatever the scanned
path was: the walk and the analyzers work relative to the scanned folder, and the paths are
rebased here, once, before suppressions, baselines and fingerprints are applied.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from mlsec import __version__
from mlsec.analyzers import ANALYZERS, AnalysisContext, load_analyzers
from mlsec.config import ScanOptions, check_rule_ids
from mlsec.errors import ConfigError, MlsecError
from mlsec.findings import Finding, ScanError, Severity, Skipped, Suppression
from mlsec.report import ScanReport
from mlsec.rules import RuleSet, load_rules
from mlsec.walk import display_name, walk

if TYPE_CHECKING:
    from mlsec.baseline import BaselineEntry

# mlsec.baseline, mlsec.selection and mlsec.suppress are imported when a scan uses them: a
# plain `mlsec scan` on every commit should not pay for them.

ProgressHook = Callable[[str, int], Callable[[int], None]]
"""Called with (phase description, total steps); returns a callback advancing by n steps."""


def _no_progress(description: str, total: int) -> Callable[[int], None]:
    return lambda n: None


def repo_path(prefix: str, relpath: str) -> str:
    """A scan-root-relative path made repository-relative."""
    if not prefix:
        return relpath
    return prefix if relpath in ("", ".") else f"{prefix}/{relpath}"


def _rebased(finding: Finding, prefix: str) -> Finding:
    """``finding`` with its path, and the sources of its analyzers' suppressions that name
    it ("requirements.txt:3"), made repository-relative."""
    if not prefix:
        return finding
    old, new = finding.path, repo_path(prefix, finding.path)
    suppressions = tuple(
        s._replace(source=new + s.source[len(old) :])
        if s.source == old or s.source.startswith(old + ":")
        else s
        for s in finding.suppressions
    )
    return finding._replace(path=new, suppressions=suppressions)


def _dedupe(findings: Iterable[Finding]) -> list[Finding]:
    seen: set[tuple[str, int | None, int | None]] = set()
    out: list[Finding] = []
    for f in findings:
        ident = (f.fingerprint, f.line, f.offset)
        if ident not in seen:
            seen.add(ident)
            out.append(f)
    return out


def _check_rules(options: ScanOptions, rules: RuleSet) -> RuleSet:
    unknown = sorted(set(options.severity_overrides) - set(rules))
    if unknown:
        raise ConfigError(
            f"severity override for unknown rule(s): {', '.join(unknown)}",
            hint="`mlsec rules` lists every rule id",
        )
    check_rule_ids(options.select, "select")
    check_rule_ids(options.ignore, "ignore")
    return rules.with_severities(options.severity_overrides)


class _Finisher:
    """Counts an analyzer's progress so that its bar can be completed when it returns
    (analyzers advance only for the targets they handle)."""

    def __init__(self, advance: Callable[[int], None], total: int) -> None:
        self.advance, self.total, self.done = advance, total, 0

    def __call__(self, n: int) -> None:
        self.done += n
        self.advance(n)

    def finish(self) -> None:
        if self.done < self.total:
            self.advance(self.total - self.done)


class _Scope:
    """Which repository paths one scan covers: under the scanned root, changed (--diff), in
    this shard (--shard). Used for the walk's notices and for stale baseline entries."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.changed: frozenset[str] | None = None
        self.kept: set[str] = set()
        self.shard: tuple[int, int] | None = None
        self.signed: set[str] = set()

    def __call__(self, path: str) -> bool:
        prefix = self.prefix
        if prefix and path != prefix and not path.startswith(prefix + "/"):
            return False
        if self.changed is not None and path not in self.changed and path not in self.kept:
            return False
        if self.shard is None:
            return True
        from mlsec.selection import in_shard, shard_key

        return in_shard(shard_key(path, self.signed), self.shard)


def _baseline(
    findings: list[Finding],
    entries: dict[str, BaselineEntry],
    options: ScanOptions,
    rules: RuleSet,
    in_scope: Callable[[str], bool],
) -> list[Finding]:
    """Baselined findings suppressed; entries that no longer occur reported (MLS921)."""
    assert options.baseline is not None
    name = display_name(options.baseline.name)
    said = Suppression(options.baseline_kind, f"in baseline {name}", name)
    out = [
        f._replace(suppressions=(*f.suppressions, said)) if f.fingerprint in entries else f
        for f in findings
    ]
    present = {f.fingerprint for f in findings}
    for entry in entries.values():
        if entry.fingerprint in present or not in_scope(entry.path or "."):
            continue
        out.append(
            rules.finding(
                "MLS921",
                entry.path or ".",
                f"Baseline entry {entry.rule_id or '?'} (fingerprint {entry.fingerprint[:12]}) "
                f"no longer occurs",
                key=entry.fingerprint,
                details={"baseline": name, "rule_id": entry.rule_id},
            )
        )
    return out


def scan(
    options: ScanOptions,
    *,
    analyzers: Iterable[str] = ANALYZERS,
    progress: ProgressHook = _no_progress,
    today: datetime.date | None = None,
) -> ScanReport:
    """Walk ``options.path``, run every analyzer, and collect one report."""
    rules = _check_rules(options, load_rules())
    baseline: dict[str, BaselineEntry] = {}
    if options.baseline is not None:
        from mlsec.baseline import load_baseline

        baseline = load_baseline(options.baseline)
    prefix = options.prefix

    walked = walk(options, rules)
    targets = walked.targets
    walk_findings: list[Finding] = list(walked.findings)
    scope = _Scope(prefix)
    if options.diff_ref is not None:
        from mlsec.selection import changed_files, select_changed

        scope.changed = changed_files(options.base, options.diff_ref)
        targets, scope.kept = select_changed(targets, prefix, scope.changed)
    if options.shard is not None:
        from mlsec.selection import select_shard

        targets, scope.signed = select_shard(targets, prefix, options.shard)
        scope.shard = options.shard
    if options.diff_ref is not None or options.shard is not None:
        walk_findings = [f for f in walk_findings if scope(repo_path(prefix, f.path))]

    findings: list[Finding] = walk_findings
    errors: list[ScanError] = list(walked.errors)
    errors.extend(ScanError(".", problem, analyzer="config") for problem in options.config_problems)
    facts: dict[str, Any] = {}
    cache = None
    if options.use_cache and targets:
        from mlsec.resultcache import open_cache

        cache = open_cache(options, rules)
    for analyzer in load_analyzers(tuple(analyzers)):
        finisher = _Finisher(
            progress(analyzer.description or analyzer.name, len(targets)), len(targets)
        )
        ctx = AnalysisContext(
            options=options,
            rules=rules,
            facts=dict(facts),
            findings=tuple(findings),
            errors=tuple(errors),
            progress=finisher,
            cache=cache,
        )
        try:
            result = analyzer.analyze(targets, ctx)
        except MlsecError:
            raise
        except Exception as exc:  # a bug: report it, keep the other analyzers' results
            errors.append(
                ScanError(
                    ".",
                    f"internal error ({type(exc).__name__}: {exc}); please report this",
                    analyzer=analyzer.name,
                    internal=True,
                )
            )
            continue
        finally:
            finisher.finish()
        findings.extend(result.findings)
        errors.extend(result.errors)
        if result.facts is not None:
            facts[analyzer.name] = result.facts

    if cache is not None:
        import contextlib

        with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
            cache.save()
    kept = [_rebased(f, prefix) for f in _dedupe(findings) if options.rule_enabled(f.rule_id)]
    if options.suppress or options.repo_tuning is not None:
        from mlsec.suppress import apply_suppressions

        kept = apply_suppressions(
            kept,
            rules=rules,
            suppress=options.suppress,
            tuning=options.repo_tuning,
            today=today or datetime.date.today(),
        )
    if options.baseline is not None:
        kept = _baseline(kept, baseline, options, rules, scope)
    kept = [f for f in kept if options.rule_enabled(f.rule_id)]
    reported = [f for f in kept if f.severity.rank >= options.min_severity.rank]
    reported.sort(key=Finding.sort_key)
    return ScanReport(
        tool_version=__version__,
        root=display_name(options.path.as_posix()),
        findings=tuple(reported),
        errors=tuple(e._replace(path=repo_path(prefix, e.path)) for e in errors),
        skipped=tuple(Skipped(repo_path(prefix, s.path), s.reason) for s in walked.skipped),
        rules=rules,
        files_scanned=len(targets),
        fail_on=options.fail_on,
        git=walked.git,
        facts=facts,
        min_severity=options.min_severity,
        below_min_severity=len(kept) - len(reported),
        category=options.category,
        config_problems=options.config_problems,
        prefix=prefix,
        cache_root=_memo_root(options),
        shard=options.shard,
    )


def _memo_root(options: ScanOptions) -> str | None:
    """Where renderers may keep memos (the BOM's: keyed on content the repository itself can
    compute): the cache folder, unless it is inside the scanned tree (``--cache-dir
    .mlsec-cache`` kept by a CI cache), where a memo and a rendered BOM the repository
    commits would become its BOM. Then nothing is memoised."""
    root = options.cache_root()
    if root is None:
        return None
    try:
        inside = root.resolve().is_relative_to(options.root.resolve())
    except (OSError, RuntimeError):  # RuntimeError: a link loop (Python before 3.13)
        inside = True  # cannot tell: no memo
    return None if inside else str(root)


def _strictest(levels: Iterable[Severity | None]) -> Severity | None:
    given = [s for s in levels if s is not None]
    return min(given, key=lambda s: s.rank) if given else None


def merge_reports(reports: Sequence[ScanReport]) -> ScanReport:
    """One report from the reports of several paths (or shards) of one repository."""
    if len(reports) == 1:
        return reports[0]
    first = reports[0]
    findings = _dedupe(f for r in reports for f in r.findings)
    findings.sort(key=Finding.sort_key)
    facts: dict[str, Any] = {}
    for report in reports:
        for name, value in report.facts.items():
            facts.setdefault(name, value)
    return first._replace(
        root=" ".join(r.root for r in reports),
        findings=tuple(findings),
        errors=tuple(dict.fromkeys(e for r in reports for e in r.errors)),
        skipped=tuple(dict.fromkeys(s for r in reports for s in r.skipped)),
        files_scanned=sum(r.files_scanned for r in reports),
        fail_on=_strictest(r.fail_on for r in reports),
        git=any(r.git for r in reports),
        facts=facts,
        min_severity=min((r.min_severity for r in reports), key=lambda s: s.rank),
        below_min_severity=sum(r.below_min_severity for r in reports),
        config_problems=tuple(dict.fromkeys(p for r in reports for p in r.config_problems)),
        prefix=first.prefix if all(r.prefix == first.prefix for r in reports) else "",
    )


def scan_paths(
    options: Sequence[ScanOptions],
    *,
    analyzers: Iterable[str] = ANALYZERS,
    progress: ProgressHook = _no_progress,
) -> ScanReport:
    """Scan several paths (each with the options built for it) into one report."""
    if not options:
        raise MlsecError("nothing to scan")
    return merge_reports([scan(o, analyzers=analyzers, progress=progress) for o in options])


__all__ = ["ScanOptions", "ScanReport", "merge_reports", "scan", "scan_paths"]
