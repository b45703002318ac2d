"""Suppressions: which findings stop gating, and why; never which findings disappear.

A suppressed finding stays in the report with its :class:`~mlsec.findings.Suppression`
records (SARIF ``suppressions``): configuration ``[[suppress]]`` entries, what configuration
inside the scanned tree ignores, leaves out or downgrades (:class:`~mlsec.config.RepoTuning`),
baselines, and inline ``# mlsec: ignore[...]`` comments that analyzers attach themselves.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from mlsec.config import RepoTuning, SuppressRule
from mlsec.findings import Finding, Suppression
from mlsec.globs import any_match, glob_match
from mlsec.rules import RuleSet

_MAX_DETAIL_DEPTH = 8


def _under(path: str, base: str) -> str | None:
    """``path`` relative to the folder ``base`` (both repository-relative), or None."""
    if not base:
        return path
    if path == base:
        return "."
    return path[len(base) + 1 :] if path.startswith(base + "/") else None


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _strings(value: object, depth: int = 0) -> Iterator[str]:
    """Every string in a finding's details (advisory ids and aliases live there)."""
    if depth > _MAX_DETAIL_DEPTH:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item, depth + 1)


def _package(finding: Finding) -> str | None:
    package = finding.details.get("package")
    if isinstance(package, str):
        return package
    if finding.rule_id.startswith("MLS2") and finding.key:
        return re.split(r"[=<>!~@ ;\[]", finding.key, maxsplit=1)[0] or None
    return None


def matches(rule: SuppressRule, finding: Finding) -> bool:
    """Whether one ``[[suppress]]`` entry covers ``finding`` (every key it sets must match)."""
    if rule.rule and not finding.rule_id.startswith(rule.rule):
        return False
    if rule.path:
        relative = _under(finding.path, rule.base)
        if relative is None or not glob_match(rule.path, relative):
            return False
    if rule.package:
        package = _package(finding)
        if package is None or _normalise(package) != _normalise(rule.package):
            return False
    if rule.advisory:
        wanted = rule.advisory.upper()
        texts = (finding.key, *_strings(dict(finding.details)))
        if not any(t.upper() == wanted for t in texts):
            return False
    return True


def expired(rule: SuppressRule, today: datetime.date) -> bool:
    return rule.expires is not None and rule.expires < today


def _tuning(tuning: RepoTuning, finding: Finding) -> Suppression | None:
    """Why the tree's own configuration would have removed ``finding``, if it would."""
    said = tuning.said

    def by(key: str, what: str) -> Suppression:
        return Suppression("inSource", f"{what} by {said[key]}", tuning.source)

    if tuning.select and not any(finding.rule_id.startswith(p) for p in tuning.select):
        return by("select", "rule not selected")
    if tuning.ignore and any(finding.rule_id.startswith(p) for p in tuning.ignore):
        return by("ignore", "rule ignored")
    relative = _under(finding.path, tuning.base)
    if relative not in (None, "."):
        assert relative is not None
        if tuning.exclude and any_match(tuning.exclude, relative):
            return by("exclude", "path excluded")
        if tuning.include and not any_match(tuning.include, relative):
            return by("include", "path not included")
    lowered = tuning.severity.get(finding.rule_id)
    if lowered is not None and lowered.rank < finding.severity.rank:
        return Suppression(
            "inSource",
            f"severity lowered from {finding.severity.value} to {lowered.value} by "
            f"{said['severity']}",
            tuning.source,
        )
    return None


def apply_suppressions(
    findings: Iterable[Finding],
    *,
    rules: RuleSet,
    suppress: tuple[SuppressRule, ...],
    tuning: RepoTuning | None,
    today: datetime.date,
) -> list[Finding]:
    """``findings`` with their suppressions attached, plus a notice per expired entry."""
    live = [r for r in suppress if not expired(r, today)]
    out: list[Finding] = []
    for finding in findings:
        added: list[Suppression] = []
        if tuning is not None and (said := _tuning(tuning, finding)) is not None:
            added.append(said)
        added.extend(Suppression(r.kind, r.reason, r.source) for r in live if matches(r, finding))
        if added:
            finding = finding._replace(suppressions=finding.suppressions + tuple(added))
        out.append(finding)
    for rule in suppress:
        if expired(rule, today):
            file, _, entry = rule.source.partition(": ")
            # An operator's file is not in the repository: the notice is about the scan.
            where = file if rule.kind == "inSource" and file else "."
            out.append(
                rules.finding(
                    "MLS920",
                    where,
                    f"Suppression {entry or rule.source} expired on {rule.expires}; it no "
                    f"longer applies (reason given: {rule.reason})",
                    key=entry or rule.source,
                    details=_describe(rule),
                )
            )
    return out


def _describe(rule: SuppressRule) -> dict[str, Any]:
    return {
        key: str(value)
        for key, value in rule._asdict().items()
        if value and key in ("rule", "path", "package", "advisory", "reason", "expires")
    }
