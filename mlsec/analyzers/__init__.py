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
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from mlsec.config import ScanOptions
from mlsec.errors import MlsecError
from mlsec.findings import EMPTY_MAPPING, Finding, ScanError
from mlsec.records import Slotted
from mlsec.rules import RuleSet
from mlsec.walk import Target

if TYPE_CHECKING:
    from mlsec.resultcache import ResultCache

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
    cache: ResultCache | None = None  # per-file results of earlier scans (mlsec.resultcache)

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


class FileOutcome(NamedTuple):
    """What one file gave one :class:`FileAnalyzer`: it travels back from a worker process and
    is what the result cache keeps (:mod:`mlsec.resultcache`), so it is plain records."""

    findings: tuple[Finding, ...] = ()
    errors: tuple[ScanError, ...] = ()
    facts: tuple[Any, ...] = ()  # per-file facts (ModelFileFact records), see take_facts
    # False: the outcome depends on more than the file (a link in its folder, another file),
    # which the result cache's key does not see: it is decided anew on every scan.
    cacheable: bool = True


class FileAnalyzer(Analyzer):
    """An analyzer that looks at one file at a time; a crash on one file is contained.

    Files are analyzed independently, in worker processes when there is enough work
    (:mod:`mlsec.pool`, ``ScanOptions.jobs``), and results of unchanged files come from the
    result cache. So per-scan state is set up in :meth:`begin` (workers inherit it), per-file
    facts are handed over by :meth:`take_facts` after each file, and the analyzer's facts are
    built from all files' facts in :meth:`summarize`, in the parent. An analyzer says it keeps
    to that with ``per_file_outcomes = True``; others run in the scan's process, uncached.
    """

    # Each file's results are its FileOutcome alone (facts through take_facts, nothing kept
    # in self between files), so its files may go to workers and to the result cache.
    per_file_outcomes: ClassVar[bool] = False

    @abstractmethod
    def accepts(self, target: Target) -> bool:
        """Whether this analyzer looks at ``target`` (decide from ``target.kind`` first)."""

    @abstractmethod
    def analyze_file(self, target: Target, ctx: AnalysisContext) -> Iterable[Finding]:
        """Findings for one file."""

    def work_size(self, target: Target) -> int:
        """About how many bytes analysing ``target`` reads: what decides whether worker
        processes pay (:mod:`mlsec.pool`) and how files are shared among them."""
        return target.size

    def begin(self, ctx: AnalysisContext) -> None:
        """Set up per-scan state (policies) before the first file is analysed, in this process
        (workers inherit it); not called when no file is to be analysed (none accepted, or
        every result from the cache). Configuration that must be checked on every scan is
        read in :meth:`analyze`."""

    def take_facts(self) -> list[Any]:
        """The facts the last :meth:`analyze_file` gathered, handed over (and forgotten)."""
        return []

    def summarize(self, facts: list[Any], result: AnalyzerResult) -> Any:
        """This analyzer's facts, from every file's facts in target order (None: none)."""
        return None

    def analyze_one(self, target: Target, ctx: AnalysisContext) -> FileOutcome:
        """One file's findings, errors and facts; never raises on bad input."""
        try:
            findings = tuple(self.analyze_file(target, ctx))
        except MlsecError:
            raise
        except OSError as exc:  # gone, swapped for a FIFO, unreadable: not checked
            self.take_facts()
            return FileOutcome(
                findings=(
                    ctx.finding(
                        "MLS901",
                        target.relpath,
                        f"File could not be read by the {self.name} analyzer ({exc});"
                        " it was not fully scanned",
                        key=f"analyzer:{self.name}",
                    ),
                ),
                errors=(ScanError(target.relpath, f"cannot read: {exc}", analyzer=self.name),),
            )
        except Exception as exc:  # a bug in mlsec, not in the file: report and go on
            self.take_facts()
            return FileOutcome(errors=(internal_error(target.relpath, self.name, exc),))
        return FileOutcome(findings=findings, facts=tuple(self.take_facts()))

    def analyze(self, targets: Sequence[Target], ctx: AnalysisContext) -> AnalyzerResult:
        from mlsec.pool import analyze_files

        outcomes = analyze_files(self, [t for t in targets if self.accepts(t)], ctx)
        result = AnalyzerResult()
        facts: list[Any] = []
        for outcome in outcomes:
            result.findings.extend(outcome.findings)
            result.errors.extend(outcome.errors)
            facts.extend(outcome.facts)
        result.facts = self.summarize(facts, result)
        return result


def internal_error(path: str, analyzer: str, exc: BaseException) -> ScanError:
    """A bug in mlsec met on ``path``: reported for that file, the scan exits 2."""
    return ScanError(
        path,
        f"internal error ({type(exc).__name__}: {exc}); please report this",
        analyzer=analyzer,
        internal=True,
    )


def load_analyzers(names: Sequence[str] = ANALYZERS) -> list[Analyzer]:
    analyzers: list[Analyzer] = []
    for spec in names:
        module_name, _, class_name = spec.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        analyzers.append(cls())
    return analyzers
