"""The finding model shared by every analyzer and renderer (contract: DESIGN.md).

On the scan path (what every `mlsec scan` imports), immutable records are ``NamedTuple``
classes rather than frozen dataclasses: on Python 3.11 each frozen dataclass costs about a
millisecond to create at import (its methods are generated and compiled) and the dataclasses
module pulls in inspect, ast and dis (10 ms more). `mlsec scan` would pay 25 ms of its 0.1 s
start-up for them, on every commit. Mutable records there are small slotted classes
(:class:`mlsec.records.Slotted`) for the same reason. Modules off that path (BOM, signatures,
dependency audit) use dataclasses.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple


class Severity(str, enum.Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is more severe; used for sorting and for --fail-on."""
        return _RANK[self]

    @classmethod
    def parse(cls, value: str) -> Severity:
        try:
            return cls(value.strip().lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {value!r} (expected one of: {names})") from None


_RANK = {
    Severity.CRITICAL: 4,
    Severity.HIGH: 3,
    Severity.MEDIUM: 2,
    Severity.LOW: 1,
    Severity.INFO: 0,
}


def join_member(*parts: str | None) -> str | None:
    """Join nested archive member paths with '!' (e.g. ``m/model.pt!archive/data.pkl``)."""
    kept = [p for p in parts if p]
    return "!".join(kept) if kept else None


# The default of mapping fields in the NamedTuple records: shared, so it must be read-only.
EMPTY_MAPPING: Mapping[str, Any] = MappingProxyType({})


class Suppression(NamedTuple):
    """Why a finding does not gate: it stays in the report, marked, never silently dropped.

    ``kind`` follows SARIF: ``inSource`` for what the scanned repository itself says (its own
    configuration, an inline ``# mlsec: ignore[...]`` comment), ``external`` for what the
    operator says (a baseline, a ``--config`` file outside the tree).
    """

    kind: str  # "inSource" or "external"
    justification: str  # the reason given, or what the suppression is (e.g. "in baseline")
    source: str  # where it was said: "ml/.mlsec.toml: suppress[0]", "requirements.txt:3"


class Finding(NamedTuple):
    """One problem found in one place.

    ``key`` is a stable discriminator (the imported global, the package and version, ...)
    that goes into the fingerprint instead of line numbers or offsets, so a finding keeps its
    identity when unrelated lines move (the fingerprint, not ``==``, is a finding's identity
    across runs). ``details`` holds structured extras for JSON output.
    """

    rule_id: str
    severity: Severity
    message: str
    path: str
    member: str | None = None
    line: int | None = None
    offset: int | None = None
    key: str = ""
    source: str = "mlsec"
    details: Mapping[str, Any] = EMPTY_MAPPING
    # Non-empty: the finding is suppressed (reported as such, never counted for the gate).
    suppressions: tuple[Suppression, ...] = ()

    @property
    def suppressed(self) -> bool:
        return bool(self.suppressions)

    @property
    def fingerprint(self) -> str:
        raw = "\0".join((self.rule_id, self.path, self.member or "", self.key or self.message))
        return hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()[:32]

    def sort_key(self) -> tuple[int, str, str, int, int, str]:
        return (
            -self.severity.rank,
            self.path,
            self.member or "",
            self.line or 0,
            self.offset or 0,
            self.rule_id,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule_id": self.rule_id,
            "severity": self.severity.value,
            "message": self.message,
            "path": self.path,
            "member": self.member,
            "line": self.line,
            "offset": self.offset,
            "fingerprint": self.fingerprint,
            "source": self.source,
        }
        if self.details:
            out["details"] = dict(self.details)
        if self.suppressions:
            out["suppressions"] = [s._asdict() for s in self.suppressions]
        return out


class ScanError(NamedTuple):
    """Something mlsec could not do (a file it could not read, an analyzer that failed)."""

    path: str
    message: str
    member: str | None = None
    analyzer: str | None = None
    # A bug in mlsec (an analyzer raised), not a property of the input: the scan exits 2.
    internal: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "member": self.member,
            "message": self.message,
            "analyzer": self.analyzer,
            "internal": self.internal,
        }


class Skipped(NamedTuple):
    """A file the walker chose not to scan, and why."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}
