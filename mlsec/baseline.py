"""Baselines: a previous JSON or SARIF report whose findings are accepted (suppressed).

A baseline is the operator's (or, named by the tree's own configuration, the repository's)
statement that these findings are known. Findings with a fingerprint in it stay in the
report as suppressed; entries that no longer occur are reported (MLS921), so that a fixed
finding cannot come back silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from mlsec.errors import ConfigError
from mlsec.walk import display_name

MAX_BASELINE_BYTES = 256 * 1024**2
SARIF_FINGERPRINT = "mlsecFingerprint/v1"
_HINT = "create one with `mlsec baseline create PATH -o baseline.json`"


class BaselineEntry(NamedTuple):
    fingerprint: str
    rule_id: str
    path: str


def read_report(path: Path, what: str = "baseline", hint: str = _HINT) -> Any:
    """A JSON or SARIF report file, read bounded (a regular file, size, nesting): the data,
    or a ConfigError that says why."""
    from mlsec import boundedjson

    where = f"{what} {display_name(str(path))}"
    try:
        return boundedjson.read_file(path, max_bytes=MAX_BASELINE_BYTES)
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror or exc}", hint=hint) from None
    except boundedjson.JsonLimitError as exc:
        raise ConfigError(f"{where} is refused: {exc}", hint=hint) from None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _sarif_entries(runs: list[Any]) -> list[BaselineEntry]:
    entries: list[BaselineEntry] = []
    for run in runs:
        results = run.get("results") if isinstance(run, dict) else None
        for result in results if isinstance(results, list) else ():
            if not isinstance(result, dict):
                continue
            prints = result.get("partialFingerprints")
            fingerprint = _text(prints.get(SARIF_FINGERPRINT)) if isinstance(prints, dict) else ""
            if not fingerprint:
                continue
            uri = ""
            locations = result.get("locations")
            if isinstance(locations, list) and locations and isinstance(locations[0], dict):
                physical = locations[0].get("physicalLocation")
                artifact = physical.get("artifactLocation") if isinstance(physical, dict) else None
                uri = _text(artifact.get("uri")) if isinstance(artifact, dict) else ""
            entries.append(BaselineEntry(fingerprint, _text(result.get("ruleId")), uri))
    return entries


def load_baseline(path: Path) -> dict[str, BaselineEntry]:
    """The accepted findings of a baseline, by fingerprint."""
    data = read_report(path)
    if isinstance(data, dict) and isinstance(data.get("findings"), list):
        entries = [
            BaselineEntry(
                _text(f.get("fingerprint")), _text(f.get("rule_id")), _text(f.get("path"))
            )
            for f in data["findings"]
            if isinstance(f, dict) and _text(f.get("fingerprint"))
        ]
    elif isinstance(data, dict) and isinstance(data.get("runs"), list):
        entries = _sarif_entries(data["runs"])
    else:
        raise ConfigError(
            f"baseline {path} is neither an mlsec JSON nor a SARIF report", hint=_HINT
        )
    return {e.fingerprint: e for e in entries}
