"""The analyzer interface, the registry, and the context analyzers run in.

An analyzer takes the walker's targets and returns findings, errors and facts (what it
learned that others use: the AIBOM reads the model, dependency and signature facts). It never
raises on bad input: a hostile file is a finding, an unreadable one an error. Per-file
analyzers subclass :class:`FileAnalyzer`, which isolates files from each other.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from mlsec.config import ScanOptions
from mlsec.errors import MlsecError
from mlsec.findings import EMPTY_MAPPING, Finding, ScanError
from mlsec.records import Slotted
from mlsec.rules import RuleSet
from mlsec.walk import Target

# Registry: run in this order ("module:Class"), imported lazily so start-up stays fast.
# Later analyzers see earlier analyzers' facts (the AIBOM runs last).
ANALYZERS: tuple[str, ...] = (
    "mlsec.models.containers:PickleModelsAnalyzer",
    "mlsec.models.checks:ModelFormatsAnalyzer",
    "mlsec.analyzers.modelscan_opinion:ModelscanAnalyzer",
    "mlsec.analyzers.dependencies:DependencyAnalyzer",
    "mlsec.analyzers.signatures:SignaturesAnalyzer",
    "mlsec.analyzers.aibom:AibomAnalyzer",
)


class AnalyzerResult(Slotted):
    """What one analyzer returns; analyzers fill it as they go."""

    __slots__ = ("errors", "facts", "findings")

    def __init__(
        self,
        findings: list[Finding] | None = None,
        errors: list[ScanError] | None = None,
        facts: Any = None,
    ) -> None:
        self.findings: list[Finding] = findings if findings is not None else []
        self.errors: list[ScanError] = errors if errors is not None else []
        self.facts = facts


class AnalysisContext(NamedTuple):
    """What an analyzer may use: options, rules, and the facts of analyzers that ran before."""

    options: ScanOptions
    rules: RuleSet
    facts: Mapping[str, Any] = EMPTY_MAPPING
    findings: Sequence[Finding] = ()  # what earlier analyzers reported (for deduplication)
    errors: Sequence[ScanError] = ()  # what could not be done so far (the walk's, analyzers')
    progress: Callable[[int], None] = lambda n: None

    @property
    def root(self) -> Path:
        return self.options.root.resolve()

    def finding(self, rule_id: str, path: str, message: str, **kwargs: Any) -> Finding:
        return self.rules.finding(rule_id, path, message, **kwargs)


class Analyzer(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""

    @abstractmethod
    def analyze(self, targets: Sequence[Target], ctx: AnalysisContext) -> AnalyzerResult:
        """Findings for ``targets``; must not raise on bad input."""


class FileAnalyzer(Analyzer):
    """An analyzer that looks at one file at a time; a crash on one file is contained."""

    @abstractmethod
    def accepts(self, target: Target) -> bool:
        """Whether this analyzer looks at ``target`` (decide from ``target.kind`` first)."""

    @abstractmethod
    def analyze_file(self, target: Target, ctx: AnalysisContext) -> Iterable[Finding]:
        """Findings for one file."""

    def analyze(self, targets: Sequence[Target], ctx: AnalysisContext) -> AnalyzerResult:
        result = AnalyzerResult()
        for target in targets:
            if not self.accepts(target):
                continue
            try:
                result.findings.extend(self.analyze_file(target, ctx))
            except MlsecError:
                raise
            except OSError as exc:
                result.errors.append(
                    ScanError(target.relpath, f"cannot read: {exc}", analyzer=self.name)
                )
            except Exception as exc:  # a bug in mlsec, not in the file: report and go on
                result.errors.append(
                    ScanError(
                        target.relpath,
                        f"internal error ({type(exc).__name__}: {exc}); please report this",
                        analyzer=self.name,
                        internal=True,
                    )
                )
            ctx.progress(1)
        return result


def load_analyzers(names: Sequence[str] = ANALYZERS) -> list[Analyzer]:
    analyzers: list[Analyzer] = []
    for spec in names:
        module_name, _, class_name = spec.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        analyzers.append(cls())
    return analyzers
