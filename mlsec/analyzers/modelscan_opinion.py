"""modelscan as a second opinion on the model files mlsec already analyzed.

modelscan's scanners run through its Python API on each candidate file, with settings built
here from its defaults (a ``modelscan-settings.toml`` in the scanned repository or the
working directory is never read, so the scanned repository cannot change the result). What
it reports that mlsec's own analyzers did not (same file, same module/operator) becomes a
finding with ``source="modelscan"`` (MLS190-MLS193, by modelscan's severity). Its failures
(for example its NumPy reader on NumPy 2) become low notices (MLS194), except on files mlsec
already reports as corrupt; they never stop the scan. modelscan runs in mlsec's bounded worker
process (:mod:`mlsec.native`: a deadline, an address-space cap), so a file that hangs it or
blows it up is such a notice too.

Costs: modelscan reads whole files (and zip members) into memory, so files over
:data:`MAX_BYTES`, and zips that would expand past :data:`MAX_UNCOMPRESSED_BYTES` or the
configured expansion ratio, are left to mlsec alone. Its Keras and SavedModel scanners
need TensorFlow; without it they are not run (mlsec parses those formats itself), instead
of failing on every file.
Where it runs (``[models] modelscan``): ``"auto"`` (the default; ``true`` says the same) runs it
only where it can change the verdict: on files mlsec could not read to their end (corrupt, a
limit hit, an MLS9xx finding or an error on that file) and on files that no mlsec analyzer
reported as read (so a library scan without the model analyzers still gets it). A file mlsec
parsed fully and judged has nothing to gain from it, and a scan of such files does not even
import modelscan (its import alone, h5py and NumPy, costs more than mlsec's start-up).
``"always"`` runs it on every file it reads; ``"off"`` (or ``false``) never.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlsec.analyzers import AnalysisContext, Analyzer, AnalyzerResult
from mlsec.facts import ModelFacts
from mlsec.findings import Finding, ScanError
from mlsec.models.registry import MODELSCAN_ROUTES, FileKind
from mlsec.models.sniff import is_keras_zip
from mlsec.walk import Target

MAX_BYTES = 256 * 1024**2
MAX_UNCOMPRESSED_BYTES = 1024**3  # for zips: what modelscan would expand in memory
_RULES = {"CRITICAL": "MLS190", "HIGH": "MLS191", "MEDIUM": "MLS192", "LOW": "MLS193"}
# Kinds modelscan understands, and the modelscan format to assume when the extension does not
# say (so a renamed pickle still gets the second opinion); None: modelscan opens it itself
# (zips). The format registry's ``modelscan`` column (mlsec.models.registry).
_KIND_FORMATS: Mapping[FileKind, str | None] = MODELSCAN_ROUTES
_NEEDS = {
    "modelscan.scanners.H5LambdaDetectScan": "h5py",
    "modelscan.scanners.KerasLambdaDetectScan": "tensorflow",
    "modelscan.scanners.SavedModelLambdaDetectScan": "tensorflow",
    "modelscan.scanners.SavedModelTensorflowOpScan": "tensorflow",
}


class ModelscanAnalyzer(Analyzer):
    name = "modelscan"
    description = "Second opinion from modelscan"

    def analyze(self, targets: Sequence[Target], ctx: AnalysisContext) -> AnalyzerResult:
        result = AnalyzerResult()
        mode = _mode(ctx)
        if mode == "off":
            return result
        settled = _fully_read(ctx) if mode == "auto" else frozenset()
        candidates = [
            t
            for t in targets
            if t.kind in _KIND_FORMATS
            and t.relpath not in settled
            and t.size <= MAX_BYTES
            and (t.kind is not FileKind.ZIP or _zip_worth_checking(t, ctx))
        ]
        ctx.progress(len(targets) - len(candidates))
        if not candidates:
            return result
        label = _cache_label() if ctx.cache is not None else None
        reports: dict[str, dict[str, Any]] = {}
        if ctx.cache is not None and label is not None:
            for target in candidates:
                data = ctx.cache.get_data(label, target)
                if _is_report(data):
                    reports[target.relpath] = data
        fresh = len(reports) < len(candidates)
        if fresh and not self._available(ctx, result):
            return result
        known = _known_by_path(ctx.findings)
        has_numpy = any(t.kind is FileKind.NUMPY for t in candidates)
        # (NumPy is imported to tell: only when modelscan runs or .npy files are reported)
        numpy_ok = _numpy_scanner_works() if fresh or has_numpy else True
        if not numpy_ok and has_numpy:
            result.findings.append(
                _notice(
                    ctx,
                    ".",
                    "modelscan's NumPy scanner does not work with the installed NumPy"
                    " (numpy.lib.format._check_version is gone in NumPy 2); .npy files were"
                    " checked by mlsec only",
                    key="modelscan-failed:numpy",
                )
            )
        from mlsec import native

        timeout = ctx.options.limits.file_timeout_seconds
        for target in candidates:
            report = reports.get(target.relpath)
            if report is None:
                try:
                    report = native.call(
                        "modelscan",
                        {"path": str(target.path), "kind": target.kind.value, "numpy_ok": numpy_ok},
                        timeout=timeout,
                    )
                except native.NativeFailure as exc:  # a hang, a blow-up or a crash: this file
                    # A notice like modelscan's other failures: mlsec's own checks of it ran.
                    result.findings.append(
                        _notice(
                            ctx,
                            target.relpath,
                            f"modelscan could not check this file: {exc}",
                            key=f"modelscan-{exc.key}",
                        )
                    )
                    ctx.progress(1)
                    continue
                if not isinstance(report, dict):
                    report = {"errors": [{"description": "modelscan returned no report"}]}
                elif ctx.cache is not None and label is not None and _is_report(report):
                    ctx.cache.put_data(label, target, report)
            earlier = known.get(target.relpath, [])
            result.findings.extend(_findings(ctx, target, report, earlier))
            result.findings.extend(_failures(ctx, target, report, earlier))
            ctx.progress(1)
        return result

    def _available(self, ctx: AnalysisContext, result: AnalyzerResult) -> bool:
        """Whether modelscan imports; if not, the notice or error saying so is in ``result``."""
        try:
            import modelscan.modelscan  # noqa: F401  (it runs in the worker; is it installed?)
        except Exception as exc:
            if isinstance(exc, ModuleNotFoundError) and exc.name == "modelscan":
                # Not installed (mlsec depends on it only where modelscan 0.8 installs, on
                # Python 3.10-3.12): say so once.
                message = (
                    "modelscan is not installed (mlsec installs it on Python 3.10-3.12 only), so"
                    " there is no second opinion; mlsec's own checks of the model files are"
                    " complete"
                )
                result.findings.append(_notice(ctx, ".", message, key="modelscan-missing"))
            else:  # a broken installation: an error entry, not a crash
                result.errors.append(
                    ScanError(".", f"modelscan unavailable: {exc}", analyzer=self.name)
                )
            return False
        import logging  # modelscan brings it; a scan without model files does not need it

        logging.getLogger("modelscan").addHandler(logging.NullHandler())
        logging.getLogger("modelscan").propagate = False
        return True


def _cache_label() -> str | None:
    """The result cache's name for modelscan's reports: its version and NumPy's (which decides
    whether its NumPy scanner runs), so an upgrade asks again. None: not installed."""
    from importlib import metadata

    try:
        versions = [metadata.version(name) for name in ("modelscan", "numpy")]
    except (metadata.PackageNotFoundError, ValueError):
        return None
    return "modelscan {} numpy {}".format(*versions)


def _is_report(data: object) -> bool:
    """The shape :func:`run_modelscan` returns (a cached one is read from disk)."""
    if not isinstance(data, dict) or set(data) != {"issues", "errors"}:
        return False
    rows: list[object] = []
    for part in ("issues", "errors"):
        if not isinstance(data[part], list):
            return False
        rows.extend(data[part])
    return all(
        isinstance(row, dict) and all(isinstance(v, str | None) for v in row.values())
        for row in rows
    )


def run_modelscan(path: str, kind: str, numpy_ok: bool) -> dict[str, Any]:
    """modelscan's report on one file (runs in the bounded worker, :mod:`mlsec.native`)."""
    target = Target(Path(path), Path(path).name, 0, FileKind(kind))
    try:
        report = _scanner(target.kind, target.path.suffix, numpy_ok).scan(target.path)
    except MemoryError:
        raise  # the worker reports it as a limit
    except Exception as exc:  # modelscan's bug or a file it cannot take: recorded
        report = {"errors": [{"description": f"{type(exc).__name__}: {exc}"}]}
    return {
        "issues": [
            {k: issue.get(k) for k in ("module", "operator", "severity", "source", "scanner")}
            for issue in report.get("issues", [])
            if isinstance(issue, dict)
        ],
        "errors": [
            {k: error.get(k) for k in ("description", "source")}
            for error in report.get("errors", [])
            if isinstance(error, dict)
        ],
    }


# Analyzers whose facts say "this file was read and judged" (mlsec.models).
_READERS = ("models", "model-formats")


def _mode(ctx: AnalysisContext) -> str:
    """``[models] modelscan``: "auto" (true), "always" or "off" (false); validated with the
    rest of the section."""
    from mlsec.analyzers.pickle_policy import parse_models_config

    origin = str(ctx.options.config_file or "[models]")
    return parse_models_config(ctx.options.section("models"), origin).modelscan


def incomplete_rule(rule_id: str) -> bool:
    """Rules that say mlsec did not read a file to its end (corrupt, a limit, MLS9xx)."""
    return rule_id in _CORRUPT_RULES or rule_id.startswith("MLS9")


def _fully_read(ctx: AnalysisContext) -> frozenset[str]:
    """Paths that mlsec's model analyzers read to their end and judged: positive evidence (a
    model fact for the file) and no sign of a partial read (a finding of
    :func:`incomplete_rule` or an error on it)."""
    read: set[str] = set()
    for name in _READERS:
        facts = ctx.facts.get(name)
        if isinstance(facts, ModelFacts):
            read.update(fact.path for fact in facts.files)
    read.difference_update(f.path for f in ctx.findings if incomplete_rule(f.rule_id))
    read.difference_update(e.path for e in ctx.errors)
    return frozenset(read)


@functools.lru_cache(maxsize=64)
def _scanner(kind: FileKind, suffix: str, numpy_ok: bool) -> Any:
    """One modelscan ``ModelScan`` per kind and extension, built once per worker process (its
    settings are a deep copy, and its scanners are looked up, at construction; ``scan``
    resets its per-run state)."""
    from modelscan.modelscan import ModelScan
    from modelscan.settings import DEFAULT_SETTINGS

    settings = _settings(DEFAULT_SETTINGS, Target(Path("x" + suffix), "", 0, kind))
    if not numpy_ok:
        settings["scanners"]["modelscan.scanners.NumpyUnsafeOpScan"]["enabled"] = False
    return ModelScan(settings=settings)


@functools.cache
def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _zip_worth_checking(target: Target, ctx: AnalysisContext) -> bool:
    if is_keras_zip(target.path) and not _installed("tensorflow"):
        return False  # only modelscan's Keras scanner reads these, and it needs TensorFlow
    return _zip_within_bounds(target, ctx)


def _zip_within_bounds(target: Target, ctx: AnalysisContext) -> bool:
    """Whether modelscan may open this zip: it reads members whole, so a zip bomb would be
    expanded in memory. Python's zipfile stops at the declared sizes, so bounding those is
    enough; mlsec's own archive analysis reports the bomb."""
    import zipfile

    from mlsec.formats.keras import ZIP_ERRORS

    limits = ctx.options.limits
    try:
        with zipfile.ZipFile(target.path) as archive:
            members = archive.infolist()
    except ZIP_ERRORS:
        return True  # modelscan records it as a bad zip (and a crash of its own is caught)
    if len(members) > limits.max_archive_members:
        return False
    total = sum(m.file_size for m in members)
    return (
        total <= min(MAX_UNCOMPRESSED_BYTES, limits.max_uncompressed_size)
        and total <= max(target.size, 1) * limits.max_expansion_ratio
    )


def _numpy_scanner_works() -> bool:
    """modelscan's .npy reader calls a private NumPy helper that NumPy 2 removed."""
    try:
        import numpy.lib.format as npformat
    except ImportError:
        return False
    return hasattr(npformat, "_check_version")


def _settings(defaults: Mapping[str, Any], target: Target) -> dict[str, Any]:
    """modelscan's default settings, with this file's extension mapped to its sniffed kind."""
    settings: dict[str, Any] = copy.deepcopy(dict(defaults))
    for scanner, module in _NEEDS.items():
        if scanner in settings["scanners"] and not _installed(module):
            settings["scanners"][scanner]["enabled"] = False
    fmt_name = _KIND_FORMATS.get(target.kind)
    if fmt_name is not None:
        suffix = Path(target.path).suffix
        formats = settings["middlewares"]["modelscan.middlewares.FormatViaExtensionMiddleware"][
            "formats"
        ]
        for fmt, extensions in formats.items():
            if fmt.name == fmt_name and suffix not in extensions:
                formats[fmt] = [*extensions, suffix]
            elif fmt.name != fmt_name and suffix in extensions and target.kind is FileKind.PICKLE:
                # e.g. a raw pickle named .bin: modelscan would try PyTorch's legacy layout
                formats[fmt] = [e for e in extensions if e != suffix]
    return settings


def _member(target: Target, source: str) -> str | None:
    prefix = Path(target.path).name + ":"
    return source[len(prefix) :] or None if source.startswith(prefix) else None


def _known_by_path(findings: Sequence[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for finding in findings:
        out.setdefault(finding.path, []).append(finding)
    return out


def _already_reported(module: str, operator: str, known: Sequence[Finding]) -> bool:
    """Whether an earlier analyzer reported the same module/operator on this file."""
    dotted = f"{module}.{operator}"
    for finding in known:
        text = f"{finding.key} {finding.message}"
        if dotted in text:
            return True
        if operator and operator in text and finding.severity.rank >= 2:
            return True  # aliases (posix.system vs os.system) and format findings (Lambda)
    return False


def _findings(
    ctx: AnalysisContext, target: Target, report: Mapping[str, Any], known: Sequence[Finding]
) -> list[Finding]:
    out: list[Finding] = []
    seen: set[tuple[str | None, str]] = set()
    for issue in report.get("issues", []):
        module, operator = str(issue.get("module", "")), str(issue.get("operator", ""))
        rule = _RULES.get(str(issue.get("severity", "")).upper())
        if rule is None or _already_reported(module, operator, known):
            continue
        member = _member(target, str(issue.get("source", "")))
        ident = (member, f"{module}.{operator}")
        if ident in seen:
            continue
        seen.add(ident)
        out.append(
            ctx.finding(
                rule,
                target.relpath,
                f"modelscan: unsafe operator {module}.{operator}"
                f" ({str(issue.get('scanner', '')).rsplit('.', 1)[-1]})",
                member=member,
                key=f"modelscan:{module}.{operator}",
                source="modelscan",
                details={"module": module, "operator": operator, "scanner": issue.get("scanner")},
            )
        )
    return out


# mlsec's own "this file is corrupt or irregular" rules (MLS105: data after the pickle's STOP,
# which modelscan's parser refuses): modelscan failing on such a file adds nothing.
_CORRUPT_RULES = frozenset({"MLS100", "MLS105", "MLS140", "MLS142", "MLS146", "MLS149", "MLS154"})


def _notice(
    ctx: AnalysisContext, path: str, message: str, key: str, member: str | None = None
) -> Finding:
    return ctx.finding("MLS194", path, message, member=member, key=key, source="modelscan")


def _failures(
    ctx: AnalysisContext, target: Target, report: Mapping[str, Any], known: Sequence[Finding]
) -> list[Finding]:
    """modelscan's errors as low notices (mlsec's own scan of the file is complete)."""
    if any(f.rule_id in _CORRUPT_RULES for f in known):
        return []
    out: list[Finding] = []
    seen: set[str | None] = set()
    for error in report.get("errors", []):
        member = _member(target, str(error.get("source", "")))
        if member in seen:
            continue
        seen.add(member)
        out.append(
            _notice(
                ctx,
                target.relpath,
                f"modelscan could not check this file: {str(error.get('description', ''))[:300]}",
                key="modelscan-failed",
                member=member,
            )
        )
    return out
