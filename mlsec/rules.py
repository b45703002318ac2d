"""Rules as data: one TOML file per rule under ``rules/`` (shipped as ``mlsec/_rules``).

A rule file has ``id``, ``name``, ``severity``, ``title``, ``description`` (what it detects
and why it matters), ``remediation``, ``references``, and optional ``tags`` and ``notice``
(true: a note about the scan itself, such as a missing second-opinion tool or a file that
could not be read, which SARIF reports as a tool notification rather than a result).
Policy lists that analyzers consult (e.g. the pickle allowlist) live under ``rules/lists/``.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from mlsec.errors import RuleError
from mlsec.findings import Finding, Severity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RULE_ID = re.compile(r"^MLS[1-49]\d\d$")
_REQUIRED = ("id", "name", "severity", "title", "description", "remediation", "references")
_OPTIONAL = ("tags", "notice")

TOPICS = {
    "1": "model files",
    "2": "dependencies",
    "3": "AIBOM / provenance",
    "4": "signatures",
    "9": "scanner notices",
}


class Rule(NamedTuple):
    id: str
    name: str
    severity: Severity
    title: str
    description: str
    remediation: str
    references: tuple[str, ...]
    tags: tuple[str, ...] = ()
    notice: bool = False

    @property
    def topic(self) -> str:
        return TOPICS[self.id[3]]

    @property
    def doc_url(self) -> str:
        return f"https://github.com/mlsec-dev/mlsec/blob/main/rules/{self.id}.toml"


def rules_dir() -> Path:
    """Where the rule data lives: inside the installed package, else the source checkout."""
    packaged = Path(__file__).resolve().parent / "_rules"
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parent.parent / "rules"
    if source.is_dir():
        return source
    raise RuleError(
        "mlsec's rule data is missing from this installation",
        hint="reinstall mlsec (pip install --force-reinstall mlsec-scanner)",
    )


def parse_rule(data: Mapping[str, Any], origin: str) -> Rule:
    missing = [k for k in _REQUIRED if not data.get(k)]
    if missing:
        raise RuleError(f"rule file {origin} lacks {', '.join(missing)}")
    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise RuleError(f"rule file {origin} has unknown keys: {', '.join(unknown)}")
    rule_id = str(data["id"])
    if not RULE_ID.match(rule_id):
        raise RuleError(f"rule file {origin}: id {rule_id!r} is not of the form MLSnnn")
    try:
        severity = Severity.parse(str(data["severity"]))
    except ValueError as exc:
        raise RuleError(f"rule file {origin}: {exc}") from None
    refs = data["references"]
    tags = data.get("tags", [])
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise RuleError(f"rule file {origin}: references must be a list of URLs")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RuleError(f"rule file {origin}: tags must be a list of strings")
    notice = data.get("notice", False)
    if not isinstance(notice, bool):
        raise RuleError(f"rule file {origin}: notice must be true or false")
    return Rule(
        id=rule_id,
        name=str(data["name"]),
        severity=severity,
        title=str(data["title"]).strip(),
        description=_unwrap(str(data["description"])),
        remediation=_unwrap(str(data["remediation"])),
        references=tuple(refs),
        tags=tuple(tags),
        notice=notice,
    )


def _unwrap(text: str) -> str:
    """Join hard-wrapped lines into paragraphs (rule files wrap at 90 columns)."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


class RuleSet(Mapping[str, Rule]):
    """All rules by id, with per-rule severity overrides from configuration applied.

    Built from a directory, a rule file is read and validated the first time its rule is
    used: a scan pays for the few rules it reports, not for parsing every file at start-up.
    """

    def __init__(
        self,
        rules: Mapping[str, Rule] | None = None,
        *,
        directory: Path | None = None,
        overrides: Mapping[str, Severity] | None = None,
    ) -> None:
        self._loaded = dict(rules or {})
        self._directory = directory
        ids = set(self._loaded)
        if directory is not None:
            ids.update(p.stem for p in directory.glob("MLS*.toml"))
        self._ids = sorted(ids)
        self._id_set = frozenset(ids)
        self._overrides = dict(overrides or {})

    def __getitem__(self, rule_id: str) -> Rule:
        rule = self._loaded.get(rule_id)
        if rule is None:
            if self._directory is None or rule_id not in self._id_set:
                raise KeyError(rule_id)
            rule = _read_rule(self._directory / f"{rule_id}.toml")
            self._loaded[rule_id] = rule
        severity = self._overrides.get(rule_id)
        return rule if severity is None else rule._replace(severity=severity)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._id_set

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def finding(
        self,
        rule_id: str,
        path: str,
        message: str,
        *,
        member: str | None = None,
        line: int | None = None,
        offset: int | None = None,
        key: str = "",
        source: str = "mlsec",
        severity: Severity | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Finding:
        """A finding of ``rule_id`` with the rule's (possibly overridden) severity."""
        if rule_id not in self:
            raise RuleError(f"internal error: no rule {rule_id} (add rules/{rule_id}.toml)")
        return Finding(
            rule_id=rule_id,
            severity=severity or self[rule_id].severity,
            message=message,
            path=path,
            member=member,
            line=line,
            offset=offset,
            key=key,
            source=source,
            details=details or {},
        )

    def with_severities(self, overrides: Mapping[str, Severity]) -> RuleSet:
        unknown = sorted(set(overrides) - self._id_set)
        if unknown:
            raise KeyError(unknown[0])
        ruleset = RuleSet(self._loaded, overrides={**self._overrides, **overrides})
        ruleset._directory, ruleset._ids, ruleset._id_set = (
            self._directory,
            self._ids,
            self._id_set,
        )
        return ruleset


def _read_rule(path: Path) -> Rule:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleError(f"rule file {path.name} cannot be read: {exc}") from None
    rule = parse_rule(data, path.name)
    if path.stem != rule.id:
        raise RuleError(f"rule file {path.name} declares id {rule.id}; name it {rule.id}.toml")
    return rule


@functools.lru_cache(maxsize=4)
def load_rules(directory: Path | None = None) -> RuleSet:
    """The rules in ``directory`` (default: mlsec's own), each validated when first used."""
    ruleset = RuleSet(directory=directory or rules_dir())
    if not ruleset:
        raise RuleError(f"no rule files found in {directory or rules_dir()}")
    return ruleset


@functools.lru_cache(maxsize=32)
def load_list(name: str) -> Mapping[str, Any]:
    """Load a policy list (``rules/lists/<name>.toml``), e.g. the pickle allowlist."""
    path = rules_dir() / "lists" / f"{name}.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleError(f"policy list {path.name} cannot be read: {exc}") from None


def rule_table_markdown(rules: RuleSet) -> str:
    """The README's rule table, generated from the rule data (a test keeps them in sync)."""
    lines = ["| ID | Severity | Title |", "|---|---|---|"]
    for rule in rules.values():
        lines.append(
            f"| [{rule.id}](rules/{rule.id}.toml) | {rule.severity.value} | {rule.title} |"
        )
    return "\n".join(lines) + "\n"
