"""What an audit returns, and the offline audit against a local OSV database.

Both the local database and the online pip-audit services (:mod:`mlsec.deps.service`) answer
the same question: for these (package, version) pairs, which advisories apply, what is the
smallest version fixing all of them, and which pairs could not be answered. The offline path
does not import pip-audit at all: importing its service package runs ``pip --version`` in a
subprocess (through ``pip-api``), which costs most of a second and fails where pip is absent,
and an air-gapped scan must not depend on either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from mlsec.deps.osv import FixFinder, OsvDatabase, OsvRecord
from mlsec.facts import Advisory

Package = tuple[str, str]  # (normalised name, version)


@dataclass
class AuditOutcome:
    service: str
    advisories: dict[Package, list[Advisory]] = field(default_factory=dict)
    smallest_fix: dict[Package, str | None] = field(default_factory=dict)
    unaudited: dict[Package, str] = field(default_factory=dict)  # package -> reason
    notes: list[str] = field(default_factory=list)  # diagnostics for the user


class Auditor(Protocol):
    def audit(self, packages: Iterable[Package]) -> AuditOutcome:
        """Advisories for each package; unanswerable packages go to ``unaudited``."""


class LocalDatabaseAuditor:
    """Audit against an :class:`~mlsec.deps.osv.OsvDatabase`, no network."""

    def __init__(self, database: OsvDatabase, *, ignore: Iterable[str] = ()) -> None:
        self.database = database
        self.ignore = frozenset(ignore)

    def records(self, name: str) -> tuple[OsvRecord, ...]:
        """The package's records (the range-floor rule enumerates the releases they name)."""
        return self.database.records(name)

    def audit(self, packages: Iterable[Package]) -> AuditOutcome:
        todo = sorted(set(packages))
        self.database.prefetch(name for name, _ in todo)
        outcome = AuditOutcome(service=self.database.summary().describe())
        finders: dict[str, FixFinder] = {}  # per package: shared across its versions
        for name, version in todo:
            found = [
                a
                for a in self.database.advisories(name, version)
                if not self.ignore.intersection((a.id, *a.aliases))
            ]
            if found:
                finder = finders.get(name)
                if finder is None:
                    finder = finders[name] = FixFinder(self.database.records(name))
                outcome.advisories[(name, version)] = found
                outcome.smallest_fix[(name, version)] = finder.smallest_fix(version, found)
        return outcome
