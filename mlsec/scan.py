"""The library entry point: ``scan(options) -> ScanReport``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from mlsec import __version__
from mlsec.analyzers import ANALYZERS, AnalysisContext, load_analyzers
from mlsec.config import ScanOptions
from mlsec.errors import ConfigError, MlsecError
from mlsec.findings import Finding, ScanError
from mlsec.report import ScanReport
from mlsec.rules import load_rules
from mlsec.walk import display_name, walk

ProgressHook = Callable[[str, int], Callable[[int], None]]
"""Called with (phase description, total steps); returns a callback advancing by n steps."""


def _no_progress(description: str, total: int) -> Callable[[int], None]:
    return lambda n: None


MAX_BASELINE_BYTES = 256 * 1024 * 1024


def load_baseline(options: ScanOptions) -> set[str]:
    """Fingerprints of accepted findings from a previous JSON or SARIF report.

    Read bounded (a regular file, at most :data:`MAX_BASELINE_BYTES`, nesting capped):
    ``--baseline /dev/zero`` or a deeply nested file is a clear error, not a hang or a crash.
    """
    if options.baseline is None:
        return set()
    from mlsec import boundedjson

    where = f"baseline {display_name(str(options.baseline))}"
    hint = "create one with `mlsec scan --format json --output baseline.json`"
    try:
        data = boundedjson.read_file(options.baseline, max_bytes=MAX_BASELINE_BYTES)
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror or exc}", hint=hint) from None
    except boundedjson.JsonLimitError as exc:
        raise ConfigError(f"{where} is refused: {exc}", hint=hint) from None
    prints: set[str] = set()
    if isinstance(data, dict) and isinstance(data.get("findings"), list):
        prints.update(
            f["fingerprint"]
            for f in data["findings"]
            if isinstance(f, dict) and isinstance(f.get("fingerprint"), str)
        )
    elif isinstance(data, dict) and isinstance(data.get("runs"), list):
        for run in data["runs"]:
            results = run.get("results") if isinstance(run, dict) else None
            for result in results if isinstance(results, list) else ():
                fingerprints = (
                    result.get("partialFingerprints") if isinstance(result, dict) else None
                )
                fp = (
                    fingerprints.get("mlsecFingerprint/v1")
                    if isinstance(fingerprints, dict)
                    else None
                )
                if isinstance(fp, str) and fp:
                    prints.add(fp)
    else:
        raise ConfigError(f"{where} is neither an mlsec JSON nor a SARIF report", hint=hint)
    return prints


def _dedupe(findings: Iterable[Finding]) -> list[Finding]:
    seen: set[tuple[str, int | None, int | None]] = set()
    out: list[Finding] = []
    for f in findings:
        ident = (f.fingerprint, f.line, f.offset)
        if ident not in seen:
            seen.add(ident)
            out.append(f)
    return out


def scan(
    options: ScanOptions,
    *,
    analyzers: Iterable[str] = ANALYZERS,
    progress: ProgressHook = _no_progress,
) -> ScanReport:
    """Walk ``options.path``, run every analyzer, and collect one report."""
    rules = load_rules()
    unknown = sorted(set(options.severity_overrides) - set(rules))
    if unknown:
        raise ConfigError(f"severity override for unknown rule(s): {', '.join(unknown)}")
    rules = rules.with_severities(options.severity_overrides)
    baseline = load_baseline(options)

    walked = walk(options, rules)
    findings: list[Finding] = list(walked.findings)
    errors: list[ScanError] = list(walked.errors)
    facts: dict[str, Any] = {}
    for analyzer in load_analyzers(tuple(analyzers)):
        ctx = AnalysisContext(
            options=options,
            rules=rules,
            facts=dict(facts),
            findings=tuple(findings),
            progress=progress(analyzer.description or analyzer.name, len(walked.targets)),
        )
        try:
            result = analyzer.analyze(walked.targets, ctx)
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
        findings.extend(result.findings)
        errors.extend(result.errors)
        if result.facts is not None:
            facts[analyzer.name] = result.facts

    kept = [f for f in _dedupe(findings) if options.rule_enabled(f.rule_id)]
    unsuppressed = [f for f in kept if f.fingerprint not in baseline]
    unsuppressed.sort(key=Finding.sort_key)
    return ScanReport(
        tool_version=__version__,
        root=display_name(options.path.as_posix()),
        findings=tuple(unsuppressed),
        errors=tuple(errors),
        skipped=tuple(walked.skipped),
        rules=rules,
        files_scanned=len(walked.targets),
        fail_on=options.fail_on,
        suppressed=len(kept) - len(unsuppressed),
        git=walked.git,
        facts=facts,
    )


__all__ = ["ScanOptions", "ScanReport", "scan"]
