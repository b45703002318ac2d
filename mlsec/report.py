"""The result of one scan: what renderers format and what the exit code is decided from."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, NamedTuple

from mlsec.findings import EMPTY_MAPPING, Finding, ScanError, Severity, Skipped
from mlsec.rules import RuleSet


class ScanReport(NamedTuple):
    tool_version: str
    root: str
    findings: tuple[Finding, ...]
    errors: tuple[ScanError, ...]
    skipped: tuple[Skipped, ...]
    rules: RuleSet
    files_scanned: int
    fail_on: Severity | None = Severity.HIGH
    suppressed: int = 0
    git: bool = False
    facts: Mapping[str, Any] = EMPTY_MAPPING

    def counts(self) -> dict[str, int]:
        counted = Counter(f.severity for f in self.findings)
        return {s.value: counted.get(s, 0) for s in Severity}

    def failing(self) -> list[Finding]:
        """Findings at or above the --fail-on level."""
        if self.fail_on is None:
            return []
        return [f for f in self.findings if f.severity.rank >= self.fail_on.rank]

    @property
    def incomplete(self) -> bool:
        """An analyzer failed internally: what it would have checked was not checked."""
        return any(e.internal for e in self.errors)

    @property
    def exit_code(self) -> int:
        if self.incomplete:
            return 2  # never a pass for what was not checked (the report is still written)
        return 1 if self.failing() else 0

    def summary(self) -> dict[str, Any]:
        return {
            "files_scanned": self.files_scanned,
            "findings": len(self.findings),
            "by_severity": self.counts(),
            "errors": len(self.errors),
            "skipped": len(self.skipped),
            "suppressed_by_baseline": self.suppressed,
            "fail_on": self.fail_on.value if self.fail_on else "none",
            "failed": bool(self.failing()),
        }

    def used_rules(self) -> list[str]:
        return sorted({f.rule_id for f in self.findings})
