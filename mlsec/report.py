"""The result of one scan: what renderers format and what the exit code is decided from.

``findings`` holds every finding at or above ``min_severity``, suppressed ones included
(each with its :class:`~mlsec.findings.Suppression` records): nothing a suppression,
baseline or the tree's own configuration removes from the gate disappears from the report.
:meth:`ScanReport.active` is what gates; :meth:`ScanReport.suppressed_findings` what does
not, and why.
"""

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
    git: bool = False
    facts: Mapping[str, Any] = EMPTY_MAPPING
    # What is reported (--min-severity); findings below it are counted, not kept.
    min_severity: Severity = Severity.INFO
    below_min_severity: int = 0
    category: str = "mlsec/"  # SARIF automationDetails.id (--category)
    verbosity: int = 0  # -1 quiet, 0 normal, 1 verbose: how much the terminal table lists
    # The tree's own configuration could not be used (exit 2; scanned with defaults).
    config_problems: tuple[str, ...] = ()
    # The scanned root's place in the repository ("" at the top): finding paths start with
    # it; facts (the BOM's) are relative to the scanned root.
    prefix: str = ""
    # Where renderers may keep memos (the BOM validation memo); None: --no-cache.
    cache_root: str | None = None
    # (K, N) of --shard: this report covers the K-th of N parts (`mlsec merge` checks that
    # all N are there).
    shard: tuple[int, int] | None = None

    def scan_relative(self, path: str) -> str:
        """A report (repository-relative) path as the analyzers' facts name it."""
        if not self.prefix:
            return path
        if path == self.prefix:
            return "."
        return path[len(self.prefix) + 1 :] if path.startswith(self.prefix + "/") else path

    def scan_relative_findings(self) -> ScanReport:
        """This report with finding paths relative to the scanned root (for the BOM)."""
        if not self.prefix:
            return self
        return self._replace(
            findings=tuple(f._replace(path=self.scan_relative(f.path)) for f in self.findings),
            prefix="",
        )

    def active(self) -> list[Finding]:
        """Findings that count for the gate: not suppressed (and at or above min_severity)."""
        return [f for f in self.findings if not f.suppressions]

    def suppressed_findings(self) -> list[Finding]:
        """Findings kept in the report but not gating, each with its suppressions."""
        return [f for f in self.findings if f.suppressions]

    def counts(self) -> dict[str, int]:
        """Active findings by severity."""
        counted = Counter(f.severity for f in self.active())
        return {s.value: counted.get(s, 0) for s in Severity}

    def suppressed_counts(self) -> dict[str, int]:
        """Suppressed findings by kind (``inSource``, ``external``)."""
        counted = Counter(s.kind for f in self.suppressed_findings() for s in f.suppressions[:1])
        return {kind: counted.get(kind, 0) for kind in ("inSource", "external")}

    def failing(self) -> list[Finding]:
        """Active findings at or above the --fail-on level."""
        if self.fail_on is None:
            return []
        return [f for f in self.active() if f.severity.rank >= self.fail_on.rank]

    @property
    def incomplete(self) -> bool:
        """Something was not checked: an analyzer failed internally, or the tree's own
        configuration could not be read."""
        return bool(self.config_problems) or any(e.internal for e in self.errors)

    @property
    def exit_code(self) -> int:
        if self.incomplete:
            return 2  # never a pass for what was not checked (the report is still written)
        return 1 if self.failing() else 0

    def summary(self) -> dict[str, Any]:
        suppressed = self.suppressed_findings()
        return {
            "files_scanned": self.files_scanned,
            "findings": len(self.findings) - len(suppressed),
            "by_severity": self.counts(),
            "suppressed": len(suppressed),
            "suppressed_by_kind": self.suppressed_counts(),
            "min_severity": self.min_severity.value,
            "below_min_severity": self.below_min_severity,
            "errors": len(self.errors),
            "skipped": len(self.skipped),
            "fail_on": self.fail_on.value if self.fail_on else "none",
            "failed": bool(self.failing()),
            "incomplete": self.incomplete,
            **({"shard": f"{self.shard[0]}/{self.shard[1]}"} if self.shard else {}),
        }

    def used_rules(self) -> list[str]:
        return sorted({f.rule_id for f in self.findings})
