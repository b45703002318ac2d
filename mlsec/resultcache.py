"""The result cache: what each per-file analyzer found in each file, kept between scans.

An unchanged repository is re-scanned without parsing: a file's outcome (findings, errors,
facts: :class:`~mlsec.analyzers.FileOutcome`) is reused when its identity is unchanged (its
path, device, inode, size, mtime and ctime; a rewrite restoring the mtime still changes the
ctime) and the scan's identity is unchanged (:func:`scan_digest`: mlsec's version and code,
the effective rules and severities, the policy lists, the limits, the ``[models]`` section,
the scanned folder). One JSON file per scan identity under ``<cache dir>/results/``, written
whole to a temporary file and renamed over the old one, so concurrent scans never see half a
file (the last one wins; an entry lost is only re-analyzed).

The cache is data mlsec wrote, but it is read as untrusted input: a file that is not a
regular file (opened non-blocking: a FIFO or ``/dev/zero`` in its place is not read), not the
user's own or writable by others (planted on a shared machine), or not valid JSON of the
expected shape is ignored, each entry is validated before use (an invalid entry
is a miss, never a crash), an entry never carries suppressions, and findings must be on the
file they are cached for. Files changed in the last :data:`RACY_NS` before the scan are not
cached (a second change within a file system's timestamp granularity would not show).

This module also holds the plain-data encoding of outcomes that worker processes send back
(:mod:`mlsec.pool`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsec.analyzers import FileOutcome
from mlsec.facts import ModelFileFact
from mlsec.findings import EMPTY_MAPPING, Finding, ScanError, Severity
from mlsec.safeopen import write_private
from mlsec.walk import Target

if TYPE_CHECKING:
    from mlsec.config import ScanOptions
    from mlsec.rules import RuleSet

FORMAT = 1
RACY_NS = 2_000_000_000  # coarse file-system timestamps (FAT: 2 s)
MAX_CACHE_BYTES = 512 * 1024**2  # a bigger file is not read (not one mlsec wrote for a repo)
MAX_FILES = 64  # cache files kept in the folder, the most recently written
_SEVERITIES = {s.value: s for s in Severity}


# -- encoding ----------------------------------------------------------------------------------
def encode_outcome(outcome: FileOutcome) -> dict[str, Any]:
    """An outcome as plain data (lists, dicts, strings, numbers, None)."""
    return {
        "f": [
            [
                f.rule_id,
                f.severity.value,
                f.message,
                f.path,
                f.member,
                f.line,
                f.offset,
                f.key,
                f.source,
                dict(f.details),
            ]
            for f in outcome.findings
        ],
        "e": [[e.path, e.message, e.member, e.analyzer, e.internal] for e in outcome.errors],
        "x": [
            [
                x.path,
                x.format,
                x.size,
                x.framework,
                x.parameter_count,
                dict(x.metadata),
                None if x.max_severity is None else x.max_severity.value,
            ]
            for x in outcome.facts
            if isinstance(x, ModelFileFact)
        ],
        **({} if outcome.cacheable else {"c": False}),
    }


class _Invalid(Exception):
    pass


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid
    return value


def _opt_str(value: object) -> str | None:
    return None if value is None else _str(value)


def _opt_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid
    return value


def _mapping(value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid
    return value or EMPTY_MAPPING


def _severity(value: object) -> Severity:
    severity = _SEVERITIES.get(value) if isinstance(value, str) else None
    if severity is None:
        raise _Invalid
    return severity


def _row(value: object, length: int) -> list[Any]:
    if not isinstance(value, list) or len(value) != length:
        raise _Invalid
    return value


def decode_outcome(
    data: object, *, rules: RuleSet | None = None, path: str | None = None
) -> FileOutcome | None:
    """The outcome ``data`` encodes, or None if it is not one. With ``rules``, every rule id
    must be known; with ``path``, findings, errors and facts must be on that file."""
    try:
        if not isinstance(data, dict):
            raise _Invalid
        findings = []
        for item in _row(data.get("f"), len(data.get("f") or [])):
            rule_id, sev, message, where, member, line, offset, key, source, details = _row(
                item, 10
            )
            findings.append(
                Finding(
                    rule_id=_str(rule_id),
                    severity=_severity(sev),
                    message=_str(message),
                    path=_str(where),
                    member=_opt_str(member),
                    line=_opt_int(line),
                    offset=_opt_int(offset),
                    key=_str(key),
                    source=_str(source),
                    details=_mapping(details),
                )
            )
        errors = []
        for item in _row(data.get("e"), len(data.get("e") or [])):
            where, message, member, analyzer, internal = _row(item, 5)
            if not isinstance(internal, bool):
                raise _Invalid
            errors.append(
                ScanError(
                    _str(where), _str(message), _opt_str(member), _opt_str(analyzer), internal
                )
            )
        facts = []
        for item in _row(data.get("x"), len(data.get("x") or [])):
            where, fmt, size, framework, parameters, metadata, worst = _row(item, 7)
            if _opt_int(size) is None:
                raise _Invalid
            facts.append(
                ModelFileFact(
                    path=_str(where),
                    format=_str(fmt),
                    size=size,
                    framework=_opt_str(framework),
                    parameter_count=_opt_int(parameters),
                    metadata=dict(_mapping(metadata)),
                    max_severity=None if worst is None else _severity(worst),
                )
            )
        cacheable = data.get("c", True)
        if not isinstance(cacheable, bool):
            raise _Invalid
    except (_Invalid, ValueError, TypeError):
        return None
    if rules is not None and any(f.rule_id not in rules for f in findings):
        return None
    if path is not None and any(
        where != path for where in (*(f.path for f in findings), *(e.path for e in errors))
    ):
        return None
    if path is not None and any(x.path != path for x in facts):
        return None
    return FileOutcome(tuple(findings), tuple(errors), tuple(facts), cacheable)


# -- the scan's identity -------------------------------------------------------------------------
def _files_identity(folder: Path) -> list[tuple[str, int, int]]:
    """The Python and TOML files under ``folder`` (name, size, mtime): mlsec's code, its rules
    and policy lists; an edited checkout or a new release is a new identity. (Stats, not
    contents: reading them costs more than most scans.)"""
    out: list[tuple[str, int, int]] = []
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name != "__pycache__":
                    stack.append(Path(entry.path))
            elif entry.name.endswith((".py", ".toml")):
                try:
                    st = entry.stat()
                except OSError:
                    continue
                out.append((entry.path[len(str(folder)) :], st.st_size, st.st_mtime_ns))
    return sorted(out)


def scan_digest(options: ScanOptions, rules: RuleSet) -> str:
    """Everything analysis results depend on besides the files themselves."""
    from mlsec import __version__
    from mlsec.rules import rules_dir

    package = Path(__file__).resolve().parent
    rule_files = rules_dir()
    identity = {
        "format": FORMAT,
        "version": __version__,
        "code": _files_identity(package),
        "rules": [] if rule_files.is_relative_to(package) else _files_identity(rule_files),
        "rule_ids": sorted(rules),
        "severities": sorted((k, v.value) for k, v in options.severity_overrides.items()),
        "limits": list(options.limits),
        "models": options.section("models"),
        "root": str(options.root.resolve()),
        "follow_symlinks": options.follow_symlinks,
        "shard": options.shard,
    }
    text = json.dumps(identity, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


# -- the cache ---------------------------------------------------------------------------------
def _identity(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _path_identity(path: Path) -> tuple[str, int]:
    """The identity of the file at ``path`` and the newest ctime it is made of. For a
    symlink (scanned as its target), the link's own inode and ctime too: a link pointed
    elsewhere while the file was read, then back, must not leave the target's identity on
    what was read. (One lstat for a regular file, which is all its identity.)"""
    st = os.lstat(path)
    if not stat.S_ISLNK(st.st_mode):
        return _identity(st), st.st_ctime_ns
    target = os.stat(path)
    ctime = max(st.st_ctime_ns, target.st_ctime_ns)
    return f"{_identity(target)}:link:{st.st_ino}:{st.st_ctime_ns}", ctime


class ResultCache:
    """One scan's view of the cache file (see the module docstring)."""

    def __init__(self, path: Path, rules: RuleSet, *, keep_others: bool = False) -> None:
        self.path = path
        self.rules = rules
        self.keep_others = keep_others  # a partial scan (--diff): keep entries it did not see
        self.started_ns = time.time_ns()
        self._old = _load(path)
        self._new: dict[str, dict[str, Any]] = {}
        self._seen: dict[str, str | None] = {}  # relpath -> identity when first looked at
        self.hits = 0
        self.stored = 0

    def _key(self, target: Target) -> str | None:
        if target.relpath in self._seen:
            return self._seen[target.relpath]
        try:
            identity, ctime = _path_identity(target.path)
        except OSError:
            key = None
        else:
            # Changed just now: a second change within the timestamp granularity would not show.
            recent = ctime > self.started_ns - RACY_NS
            key = None if recent else f"{target.relpath}\0{identity}"
        self._seen[target.relpath] = key
        return key

    def get(self, analyzer: str, target: Target) -> FileOutcome | None:
        """``analyzer``'s outcome for ``target`` from an earlier scan, validated."""
        data = self.get_data(analyzer, target)
        if data is None:
            return None
        outcome = decode_outcome(data, rules=self.rules, path=target.relpath)
        if outcome is None or not outcome.cacheable:  # never stored: not a result to trust
            self._drop(analyzer, target)
            return None
        self.hits += 1
        return outcome

    def put(self, analyzer: str, target: Target, outcome: FileOutcome) -> None:
        if any(e.internal for e in outcome.errors) or not outcome.cacheable:
            return  # a bug met on the file, or a result that depends on more than the file
        try:
            data = encode_outcome(outcome)
        except (TypeError, ValueError):
            return
        self.put_data(analyzer, target, data)

    def get_data(self, name: str, target: Target) -> Any:
        """What was stored under ``name`` for this very file (unchanged since), or None; the
        caller validates it (it is read from disk)."""
        key = self._key(target)
        if key is None:
            return None
        entry = self._old.get(key)
        data = entry.get(name) if isinstance(entry, dict) else None
        if data is not None:
            self._new.setdefault(key, {})[name] = data
        return data

    def put_data(self, name: str, target: Target, data: Any) -> None:
        """Keep ``data`` (plain JSON data) under ``name`` for this file, if the file did not
        change since it was first looked at in this scan."""
        key = self._key(target)
        if key is None:
            return
        try:
            # The file as it is now must be the file as it was before it was read.
            if f"{target.relpath}\0{_path_identity(target.path)[0]}" != key:
                return
            json.dumps(data, allow_nan=False)  # only what JSON keeps as it is
        except (OSError, TypeError, ValueError, RecursionError):
            return
        self._new.setdefault(key, {})[name] = data
        self.stored += 1

    def _drop(self, name: str, target: Target) -> None:
        key = self._key(target)
        if key is not None and name in self._new.get(key, {}):
            del self._new[key][name]
            self.stored += 1  # the file changes: the bad entry goes

    def save(self) -> None:
        """Write the entries of this scan (and, for a partial scan, the others) atomically."""
        if not self.stored and (self.keep_others or self._new.keys() == self._old.keys()):
            return  # every result came from the file: leave it as it is
        entries = dict(self._old) if self.keep_others else {}
        entries.update(self._new)
        text = json.dumps({"format": FORMAT, "entries": entries}, separators=(",", ":"))
        write_private(self.path, text)
        _prune(self.path.parent, self.path)


def _prune(folder: Path, current: Path) -> None:
    """The oldest cache files past :data:`MAX_FILES` removed (one is written per root,
    configuration, shard and mlsec version: scans of temporary checkouts would fill the
    disk), and the temporary files of scans killed while writing (an hour old)."""
    now = time.time_ns()
    kept: list[tuple[int, str]] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        stale = now - st.st_mtime_ns > 3600 * 10**9
        if entry.name.startswith(".results-") and entry.name.endswith(".tmp") and stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
        elif entry.name.endswith(".json") and entry.path != str(current):
            kept.append((st.st_mtime_ns, entry.path))
    kept.sort()
    for _, path in kept[: max(0, len(kept) - (MAX_FILES - 1))]:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _load(path: Path) -> dict[str, Any]:
    """The cache file's entries; nothing if it is missing, not a regular file (a FIFO, a
    device, a folder), too big, not written by this user or writable by others (on a shared
    machine, a planted file would decide verdicts), or not what mlsec writes."""
    from mlsec import boundedjson

    try:
        data = json.loads(boundedjson.read_capped(path, MAX_CACHE_BYTES, private=True))
    except (OSError, ValueError, RecursionError):  # JsonLimitError is a ValueError
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


def open_cache(options: ScanOptions, rules: RuleSet) -> ResultCache | None:
    """This scan's result cache, or None when caching is off."""
    root = options.cache_root()
    if root is None:
        return None
    folder = root / "results"
    path = folder / f"{scan_digest(options, rules)}.json"
    return ResultCache(path, rules, keep_others=options.diff_ref is not None)
