"""`mlsec merge`: one report from the JSON or SARIF reports of several shards or paths.

SARIF runs are merged per tool and ``automationDetails.id`` (one run per category, as GitHub
code scanning expects; a run of another tool is never folded into mlsec's); results are
deduplicated by fingerprint and location, rules by id (result ``ruleIndex`` values are
renumbered). mlsec JSON reports are concatenated the same way and their summary recounted.

A shard report is a file another job wrote, so it is read as untrusted input: bounded
(:func:`mlsec.baseline.read_report`), JSON reports checked against the report schema
(``schemas/mlsec-report.schema.json``, with jsonschema), SARIF runs checked for the shape of
every field this module reads. A report that is not what mlsec writes is refused (exit 2),
never merged in part; reports of different mlsec versions, and one file given twice, too.
When two reports disagree about one finding, the merge keeps the one that gates (not
suppressed, the higher severity): a merge never turns a finding into a pass.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlsec.baseline import SARIF_FINGERPRINT, read_report
from mlsec.errors import MlsecError
from mlsec.findings import Severity

_HINT = "merge reports written by `mlsec scan --format json` or `--format sarif`"
_SEVERITY_RANK = {s.value: s.rank for s in Severity}
# SARIF result levels, weakest first (a missing level is "warning", SARIF 3.27.10).
_LEVEL_RANK = {"none": 0, "note": 1, "warning": 2, "error": 3}


class _Refused(Exception):
    """The report is not of the shape this module reads (the message says where)."""


def _refuse(path: Path, what: str) -> MlsecError:
    return MlsecError(f"{path} cannot be merged: {what}", hint=_HINT)


def _kind(data: Any, path: Path) -> str:
    if isinstance(data, dict) and "runs" in data:
        return "sarif"
    if isinstance(data, dict) and "findings" in data:
        return "json"
    raise MlsecError(f"{path} is neither an mlsec JSON nor a SARIF report", hint=_HINT)


def _canonical(value: Any) -> str:
    """A hashable stand-in for plain JSON data (dedupe in linear time)."""
    return json.dumps(value, sort_keys=True)


# -- checks ------------------------------------------------------------------------------------
def _schema_file() -> Path:
    """The report schema: inside the installed package, else the source checkout."""
    packaged = Path(__file__).resolve().parent / "_schemas" / "mlsec-report.schema.json"
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "schemas" / "mlsec-report.schema.json"


def _check_json(data: dict[str, Any]) -> None:
    import jsonschema

    schema = json.loads(_schema_file().read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise _Refused(f"not an mlsec JSON report at {where}: {error.message[:200]}")
    summary = data["summary"]
    # Fields of the summary the schema leaves open and the merge reads.
    if summary.get("min_severity", "info") not in _SEVERITY_RANK:
        raise _Refused("summary/min_severity is not a severity")
    below = summary.get("below_min_severity", 0)
    if isinstance(below, bool) or not isinstance(below, int) or below < 0:
        raise _Refused("summary/below_min_severity is not a count")
    if not isinstance(summary.get("incomplete", False), bool):
        raise _Refused("summary/incomplete is not a boolean")


def _want(value: Any, kind: type | tuple[type, ...], where: str, optional: bool = True) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _Refused(f"{where} is not {getattr(kind, '__name__', 'of the expected type')}")
    return value


def _check_sarif(data: dict[str, Any]) -> None:
    if data.get("version") != "2.1.0":
        raise _Refused("not SARIF 2.1.0")
    runs = _want(data.get("runs"), list, "runs", optional=False)
    if not runs:
        raise _Refused("the report has no runs")
    for i, run in enumerate(runs):
        at = f"runs/{i}"
        _want(run, dict, at, optional=False)
        tool = _want(run.get("tool"), dict, f"{at}/tool", optional=False)
        driver = _want(tool.get("driver"), dict, f"{at}/tool/driver", optional=False)
        _want(driver.get("name"), str, f"{at}/tool/driver/name", optional=False)
        _want(driver.get("version"), str, f"{at}/tool/driver/version")
        for j, rule in enumerate(_want(driver.get("rules"), list, f"{at}/rules") or ()):
            _want(rule, dict, f"{at}/rules/{j}", optional=False)
            _want(rule.get("id"), str, f"{at}/rules/{j}/id", optional=False)
        details = _want(run.get("automationDetails"), dict, f"{at}/automationDetails")
        if details is not None:
            _want(details.get("id"), str, f"{at}/automationDetails/id")
        for j, result in enumerate(_want(run.get("results"), list, f"{at}/results") or ()):
            _check_result(result, f"{at}/results/{j}")
        for j, call in enumerate(_want(run.get("invocations"), list, f"{at}/invocations") or ()):
            _want(call, dict, f"{at}/invocations/{j}", optional=False)
            _want(
                call.get("executionSuccessful"), bool, f"{at}/invocations/{j}/executionSuccessful"
            )
            notes = call.get("toolExecutionNotifications")
            _want(notes, list, f"{at}/invocations/{j}/toolExecutionNotifications")


def _check_result(result: Any, at: str) -> None:
    _want(result, dict, at, optional=False)
    _want(result.get("ruleId"), str, f"{at}/ruleId", optional=False)
    _want(result.get("level"), str, f"{at}/level")
    prints = _want(result.get("partialFingerprints"), dict, f"{at}/partialFingerprints")
    if prints is not None:
        _want(prints.get(SARIF_FINGERPRINT), str, f"{at}/partialFingerprints")
    _want(result.get("suppressions"), list, f"{at}/suppressions")
    locations = _want(result.get("locations"), list, f"{at}/locations") or []
    for k, location in enumerate(locations[:1]):  # the first one is the key (_location_key)
        _want(location, dict, f"{at}/locations/{k}", optional=False)
        physical = _want(location.get("physicalLocation"), dict, f"{at}/locations/{k}")
        if physical is None:
            continue
        artifact = _want(physical.get("artifactLocation"), dict, f"{at}/locations/{k}/artifact")
        if artifact is not None:
            _want(artifact.get("uri"), str, f"{at}/locations/{k}/artifactLocation/uri")
        region = _want(physical.get("region"), dict, f"{at}/locations/{k}/region")
        if region is not None:
            _want(region.get("startLine"), int, f"{at}/locations/{k}/region/startLine")


# -- SARIF -------------------------------------------------------------------------------------
def _location_key(result: dict[str, Any]) -> str:
    locations = result.get("locations") or []
    physical = (locations[0].get("physicalLocation") or {}) if locations else {}
    uri = (physical.get("artifactLocation") or {}).get("uri") or ""
    line = (physical.get("region") or {}).get("startLine") or ""
    return f"{uri}:{line}"


def _result_weight(result: dict[str, Any]) -> tuple[int, int]:
    """How much a result gates: not suppressed first, then its level."""
    suppressed = bool(result.get("suppressions"))
    return (0 if suppressed else 1, _LEVEL_RANK.get(result.get("level") or "warning", 2))


def _merge_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    merged = dict(runs[0])
    driver = dict(merged["tool"]["driver"])
    rules: dict[str, dict[str, Any]] = {}
    results: dict[tuple[str, str, str], dict[str, Any]] = {}
    notifications: dict[str, Any] = {}
    successful = True
    for run in runs:
        for rule in run["tool"]["driver"].get("rules") or ():
            rules.setdefault(rule["id"], rule)
        for result in run.get("results") or ():
            prints = result.get("partialFingerprints") or {}
            key = (result["ruleId"], prints.get(SARIF_FINGERPRINT) or "", _location_key(result))
            kept = results.get(key)
            if kept is None or _result_weight(result) > _result_weight(kept):
                results[key] = dict(result)
        for invocation in run.get("invocations") or ():
            successful = successful and invocation.get("executionSuccessful") is not False
            for note in invocation.get("toolExecutionNotifications") or ():
                notifications.setdefault(_canonical(note), note)
    order = sorted(rules)
    index = {rule_id: i for i, rule_id in enumerate(order)}
    for result in results.values():
        if result["ruleId"] in index:
            result["ruleIndex"] = index[result["ruleId"]]
        else:  # an index into another run's rules would name the wrong rule
            result.pop("ruleIndex", None)
    driver["rules"] = [rules[r] for r in order]
    merged["tool"] = {**merged["tool"], "driver": driver}
    merged["results"] = list(results.values())
    merged["invocations"] = [
        {
            "executionSuccessful": successful,
            "toolExecutionNotifications": list(notifications.values()),
        }
    ]
    merged.pop("properties", None)  # per-run summaries no longer add up
    return merged


def _run_group(run: dict[str, Any]) -> tuple[str, str]:
    details = run.get("automationDetails") or {}
    return (run["tool"]["driver"]["name"], details.get("id") or "")


def merge_sarif(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One run per tool and category from the (checked) SARIF ``reports``."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for report in reports:
        for run in report["runs"]:
            groups.setdefault(_run_group(run), []).append(run)
    for (tool, _), runs in groups.items():
        versions = {run["tool"]["driver"].get("version") for run in runs}
        if len(versions) > 1:
            raise MlsecError(
                f"the reports come from different versions of {tool} "
                f"({', '.join(sorted(str(v) for v in versions))})",
                hint="scan every shard with the same version, then merge",
            )
    out = dict(reports[0])
    out["runs"] = [_merge_runs(runs) for runs in groups.values()]
    return out


# -- JSON --------------------------------------------------------------------------------------
def _finding_weight(finding: dict[str, Any]) -> tuple[int, int]:
    return (0 if finding.get("suppressions") else 1, _SEVERITY_RANK[finding["severity"]])


def _finding_order(finding: dict[str, Any]) -> tuple[int, str, str, int, int, str]:
    """:meth:`mlsec.findings.Finding.sort_key` of the finding's JSON form."""
    return (
        -_SEVERITY_RANK[finding["severity"]],
        finding["path"],
        finding["member"] or "",
        finding["line"] or 0,
        finding["offset"] or 0,
        finding["rule_id"],
    )


# One finding, whichever report has it (a report listing another file's finding under its
# fingerprint does not replace that finding).
_FINDING_IDENTITY = ("fingerprint", "rule_id", "path", "member", "line", "offset")


def merge_json(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report from the (checked) mlsec JSON ``reports``, its summary recounted."""
    versions = {r["tool"]["version"] for r in reports}
    if len(versions) > 1:
        raise MlsecError(
            f"the reports come from different mlsec versions ({', '.join(sorted(versions))})",
            hint="scan every shard with the same mlsec version, then merge",
        )
    out = dict(reports[0])
    out["root"] = " ".join(dict.fromkeys(r["root"] for r in reports))
    kept: dict[tuple[Any, ...], dict[str, Any]] = {}
    for report in reports:
        for finding in report["findings"]:
            key = tuple(finding[k] for k in _FINDING_IDENTITY)
            other = kept.get(key)
            if other is None or _finding_weight(finding) > _finding_weight(other):
                kept[key] = finding
    findings = sorted(kept.values(), key=_finding_order)
    out["findings"] = findings
    for part in ("errors", "skipped"):
        items: dict[str, dict[str, Any]] = {}
        for report in reports:
            for item in report[part]:
                items.setdefault(_canonical(item), item)
        out[part] = list(items.values())
    out.pop("facts", None)  # facts of different shards do not merge
    active = [f for f in findings if not f.get("suppressions")]
    counted = Counter(f["severity"] for f in active)
    by_kind = Counter(f["suppressions"][0]["kind"] for f in findings if f.get("suppressions"))
    summaries = [r["summary"] for r in reports]
    gates = [s["fail_on"] for s in summaries if s["fail_on"] != "none"]
    # The strictest gate of the shards: a shard's failure is never the merge's pass.
    fail_on = min(gates, key=lambda g: _SEVERITY_RANK[g]) if gates else "none"
    gate = _SEVERITY_RANK[fail_on] if fail_on != "none" else None
    min_severity = min(
        (s.get("min_severity", "info") for s in summaries), key=lambda s: _SEVERITY_RANK[s]
    )
    out["summary"] = {
        **summaries[0],
        "files_scanned": sum(s["files_scanned"] for s in summaries),
        "findings": len(active),
        "by_severity": {s.value: counted.get(s.value, 0) for s in Severity},
        "suppressed": len(findings) - len(active),
        "suppressed_by_kind": {k: by_kind.get(k, 0) for k in ("inSource", "external")},
        "min_severity": min_severity,
        "below_min_severity": sum(s.get("below_min_severity", 0) for s in summaries),
        "errors": len(out["errors"]),
        "skipped": len(out["skipped"]),
        "fail_on": fail_on,
        "failed": gate is not None and any(_SEVERITY_RANK[f["severity"]] >= gate for f in active),
        "incomplete": any(s.get("incomplete", False) for s in summaries)
        or any(e["internal"] for e in out["errors"]),
    }
    for stale in ("suppressed_in_report", "suppressed_by_baseline", "shard"):
        out["summary"].pop(stale, None)  # of one shard, not of the merge
    return out


# -- shards ------------------------------------------------------------------------------------
def _shard(value: Any, path: Path) -> tuple[int, int] | None:
    """A report's ``summary.shard`` ("K/N") as numbers; None for a report of a whole scan."""
    from mlsec.selection import shard_of

    if value is None:
        return None
    pair = shard_of(value) if isinstance(value, str) else None
    if pair is None:
        raise _refuse(path, f"summary/shard is not K/N with 1 <= K <= N: {value!r}"[:200])
    return pair


def _shard_groups(
    kind: str, loaded: Sequence[tuple[Path, dict[str, Any]]]
) -> list[list[tuple[Path, tuple[int, int] | None]]]:
    """Each merged scan's parts and their shards: all JSON reports are one scan; SARIF runs of
    mlsec are one scan per category (other tools' runs are not mlsec's shards)."""
    if kind == "json":
        return [[(path, _shard(data["summary"].get("shard"), path)) for path, data in loaded]]
    groups: dict[str, list[tuple[Path, tuple[int, int] | None]]] = {}
    for path, data in loaded:
        for run in data["runs"]:
            tool, category = _run_group(run)
            if tool != "mlsec":
                continue
            properties = run.get("properties")
            summary = properties.get("summary") if isinstance(properties, dict) else None
            shard = summary.get("shard") if isinstance(summary, dict) else None
            groups.setdefault(category, []).append((path, _shard(shard, path)))
    return list(groups.values())


def _check_shards(shards: Sequence[tuple[Path, tuple[int, int] | None]]) -> None:
    """Shard reports (``--shard K/N``) merge only as a whole: all N shards of one split, each
    once, and nothing else. Three shards of four are not the scan, so they do not merge into
    a report that looks like it (exit 2, naming what is missing)."""
    given = [(path, shard) for path, shard in shards if shard is not None]
    if not given:
        return  # reports of whole scans (of several paths): nothing to check
    hint = "merge the reports of all N shards of one `mlsec scan --shard K/N`, each once"
    first, (_, count) = given[0]
    if len(given) < len(shards):
        whole = next(path for path, shard in shards if shard is None)
        raise MlsecError(
            f"{whole} is the report of a whole scan and {first} of shard "
            f"{given[0][1][0]}/{count}: a shard merges only with the other shards",
            hint=hint,
        )
    by_index: dict[int, Path] = {}
    for path, (index, of) in given:
        if of != count:
            raise MlsecError(
                f"{path} is a shard of {of} and {first} of {count}: not one split", hint=hint
            )
        if index in by_index:
            raise MlsecError(
                f"{path} and {by_index[index]} are both shard {index}/{count}", hint=hint
            )
        by_index[index] = path
    if len(by_index) < count:
        # The first few missing ones (N comes from the reports: never enumerate all N).
        absent = (k for k in range(1, count + 1) if k not in by_index)  # lazy: N may be huge
        missing = itertools.islice(absent, 8)
        names = [f"{k}/{count}" for k in missing]
        more = count - len(by_index) - len(names)
        raise MlsecError(
            f"shard {', '.join(names)}{f' and {more} more' if more else ''} missing: the merge "
            "would not be the whole scan",
            hint=hint,
        )


# -- files -------------------------------------------------------------------------------------
def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # read_report says why
    return (st.st_dev, st.st_ino)


def merge_files(paths: Sequence[Path]) -> tuple[str, dict[str, Any]]:
    """The kind ("json" or "sarif") and merged data of ``paths`` (all of one kind)."""
    if not paths:
        raise MlsecError("nothing to merge", hint=_HINT)
    seen: dict[tuple[int, int], Path] = {}
    for path in paths:
        identity = _identity(path)
        if identity is not None and identity in seen:
            raise MlsecError(
                f"{path} is given twice (as {seen[identity]} too): its files would count twice",
                hint="give each shard's report once",
            )
        if identity is not None:
            seen[identity] = path
    loaded = [(p, read_report(p, "report", _HINT)) for p in paths]
    kinds = {_kind(data, p) for p, data in loaded}
    if len(kinds) > 1:
        raise MlsecError("cannot merge JSON and SARIF reports together", hint=_HINT)
    kind = kinds.pop()
    for path, data in loaded:
        try:
            _check_sarif(data) if kind == "sarif" else _check_json(data)
        except _Refused as exc:
            raise _refuse(path, str(exc)) from None
    reports = [data for _, data in loaded]
    merged = merge_sarif(reports) if kind == "sarif" else merge_json(reports)
    for parts in _shard_groups(kind, loaded):
        _check_shards(parts)
    return kind, merged
