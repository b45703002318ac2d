"""Offline OSV database: loading, a cached compact index, and OSV matching semantics.

A database is osv.dev's ``PyPI/all.zip`` export, the folder ``mlsec db update`` fills, or any
directory of OSV JSON/YAML records (the PyPA advisory database layout,
``vulns/<package>/PYSEC-*.yaml``). Parsing thousands of YAML files costs seconds, so the first
use builds a compact JSON index (records by normalised package name, only the fields matching
needs) in the cache directory, keyed on the database path and a fingerprint of its files
(sizes and mtimes); later runs load the index and only materialise the packages asked for.

Matching follows the OSV schema: ECOSYSTEM ranges with any number of introduced / fixed /
last_affected events (PEP 440 ordering, so pre-releases sort before their release), explicit
``versions`` lists, withdrawn records skipped, package names PEP 503-normalised, and records
that alias each other (PYSEC/GHSA/CVE) merged into one advisory.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version

from mlsec.errors import MlsecError
from mlsec.facts import Advisory
from mlsec.findings import Severity

INDEX_FORMAT = 3
METADATA_FILE = "mlsec-db.json"  # written by `mlsec db update` beside all.zip
EXPORT_FILE = "all.zip"
MAX_RECORD_BYTES = 4 * 1024 * 1024
_RECORD_SUFFIXES = (".json", ".yaml", ".yml")
_PARALLEL_THRESHOLD = 400  # files; below this a process pool costs more than it saves


def default_database_dir() -> Path:
    """Where `mlsec db update` keeps the export, and where `--offline` looks for it."""
    from mlsec.config import default_cache_dir

    return default_cache_dir() / "osv"


# -- the compact record ----------------------------------------------------------------------
Event = tuple[str, str]  # ("introduced" | "fixed" | "last_affected", version)
# What building an index yields: {package: [compact record]}, bad record count, newest modified.
Built = tuple[dict[str, list[list[Any]]], int, str]


# One affected interval: lower bound (inclusive), upper bound (None: open-ended) and whether
# the upper bound is itself affected (a last_affected event) or the first fixed version.
Interval = tuple[Version, Version | None, bool]


class AffectedRange:
    """One affected[] entry of a record, for one package (ECOSYSTEM ranges only)."""

    __slots__ = ("_intervals", "_listed", "ranges", "versions")

    def __init__(self, ranges: tuple[tuple[Event, ...], ...], versions: tuple[str, ...]) -> None:
        self.ranges = ranges
        # Listed versions as equality keys (see equality_key), computed once when indexing;
        # strings that are not PEP 440 versions are kept as written.
        self.versions = versions
        # The intervals with their bounds as sort keys (see version_order), built when first
        # needed: matching is the audit's inner loop.
        self._intervals: tuple[tuple[Any, Any, bool], ...] | None = None
        self._listed: frozenset[str] | None = None

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, AffectedRange)
            and self.ranges == other.ranges
            and self.versions == other.versions
        )

    def __hash__(self) -> int:
        return hash((self.ranges, self.versions))

    def __repr__(self) -> str:
        return f"AffectedRange(ranges={self.ranges!r}, versions={self.versions!r})"

    @property
    def intervals(self) -> tuple[Interval, ...]:
        return tuple(i for events in self.ranges for i in intervals(events))

    def _keyed(self) -> tuple[tuple[Any, Any, bool], ...]:
        if self._intervals is None:
            self._intervals = tuple(
                (version_order(low), None if high is None else version_order(high), inclusive)
                for low, high, inclusive in self.intervals
            )
        return self._intervals

    def affects(self, version: str) -> bool:
        parsed = parse_version(version)
        if parsed is None:
            return version in self.versions  # not PEP 440: only an exact listing can match
        return self.affects_parsed(parsed, version)

    def affects_parsed(self, parsed: Version, text: str) -> bool:
        if parsed.local is not None:
            # A local build (torch 2.1.0+cu118) is its public release as far as advisories go.
            parsed = public_version(parsed)
            text = str(parsed)
        key = version_order(parsed)
        for low, high, inclusive in self._intervals or self._keyed():
            if key >= low and (high is None or key < high or (inclusive and key == high)):
                return True
        if not self.versions:
            return False
        if self._listed is None:
            self._listed = frozenset(self.versions)
        return equality_key(text) in self._listed

    def fixed_versions(self) -> Iterator[str]:
        for events in self.ranges:
            for kind, value in events:
                if kind == "fixed":
                    yield value


@dataclass(frozen=True)
class OsvRecord:
    id: str
    aliases: tuple[str, ...]
    summary: str
    affected: tuple[AffectedRange, ...]  # for the package this record was looked up by
    severity_vectors: tuple[tuple[str, str], ...] = ()  # (CVSS_V3|CVSS_V4|CVSS_V2, vector)
    database_severity: str | None = None
    references: tuple[str, ...] = ()
    withdrawn: bool = False

    def affects(self, version: str) -> bool:
        parsed = parse_version(version)
        if parsed is None:
            return not self.withdrawn and any(version in a.versions for a in self.affected)
        return self.affects_parsed(parsed, version)

    def affects_parsed(self, parsed: Version, text: str) -> bool:
        if self.withdrawn:
            return False
        return any(a.affects_parsed(parsed, text) for a in self.affected)

    def to_compact(self) -> list[Any]:
        return [
            self.id,
            list(self.aliases),
            self.summary,
            [[[list(e) for e in r] for r in a.ranges] + [a.versions] for a in self.affected],
            [list(v) for v in self.severity_vectors],
            self.database_severity,
            list(self.references),
        ]

    @classmethod
    def from_compact(cls, data: Sequence[Any]) -> OsvRecord:
        affected = tuple(
            AffectedRange(
                ranges=tuple(tuple((str(k), str(v)) for k, v in r) for r in entry[:-1]),
                versions=tuple(entry[-1]),
            )
            for entry in data[3]
        )
        return cls(
            id=data[0],
            aliases=tuple(data[1]),
            summary=data[2],
            affected=affected,
            severity_vectors=tuple((str(t), str(v)) for t, v in data[4]),
            database_severity=data[5],
            references=tuple(data[6]),
        )


@functools.lru_cache(maxsize=65536)
def parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


_ZERO = Version("0")
_NUMBER = r"(?:0|[1-9][0-9]*)"
_CANONICAL = re.compile(
    rf"^({_NUMBER}(?:\.{_NUMBER})*)((?:a|b|rc){_NUMBER})?(\.post{_NUMBER})?(\.dev{_NUMBER})?$"
)


@functools.lru_cache(maxsize=65536)
def equality_key(text: str) -> str | None:
    """A string equal for PEP 440-equal versions (``1.13`` and ``1.13.0``), like
    ``packaging.utils.canonicalize_version``, with a fast path for versions already written in
    canonical form: records list hundreds of versions each, and parsing them all costs more
    than the rest of the audit."""
    match = _CANONICAL.match(text)
    if match is None:
        parsed = parse_version(text)
        return canonicalize_version(parsed) if parsed is not None else None
    release = match.group(1).split(".")
    while len(release) > 1 and release[-1] == "0":
        release.pop()
    return ".".join(release) + "".join(g for g in match.groups()[1:] if g)


def version_key(text: str) -> Version:
    """A sort key for version strings (unparsable ones sort first)."""
    return parse_version(text) or _ZERO


def version_order(version: Version) -> Any:
    """A key that orders like ``version`` and compares much faster.

    ``packaging`` compares versions through its ``_key`` tuple; comparing the tuples
    directly skips two Python-level calls per comparison, which is most of the time of an
    audit of tens of thousands of pins. Falls back to the version itself."""
    return getattr(version, "_key", version)


@functools.lru_cache(maxsize=65536)
def public_version(version: Version) -> Version:
    """The version without its local label (``2.1.0+cu118`` -> ``2.1.0``)."""
    return Version(version.public) if version.local is not None else version


def _bound(value: str) -> Version | None:
    return _ZERO if value == "0" else parse_version(value)


def intervals(events: Sequence[Event]) -> list[Interval]:
    """The affected intervals of one ECOSYSTEM range, each evaluated on its own.

    The OSV schema's algorithm sorts the events and walks them once; when one events list
    holds touching or overlapping intervals written out of order (PYSEC-2022-42972:
    ``introduced 0.13.0, fixed 0.14.0rc1, introduced 0.12.2, fixed 0.13.0``), that walk
    drops an interval at the shared boundary. Here every ``introduced`` event opens its own
    interval, closed by the limit (``fixed`` / ``last_affected``) written right after it when
    that limit lies above it, else by the lowest limit above it anywhere in the list (events
    written in any order), else open-ended. Unparsable bounds cannot be ordered and are
    skipped, as the schema's algorithm does."""
    parsed: list[tuple[str, Version]] = []
    for kind, value in events:
        bound = _bound(value)
        if bound is not None:
            parsed.append((kind, bound))
    out: list[Interval] = []
    for index, (kind, low) in enumerate(parsed):
        if kind != "introduced":
            continue
        limit: tuple[str, Version] | None = None
        following = parsed[index + 1] if index + 1 < len(parsed) else None
        if following is not None and _closes(low, following):
            limit = following
        else:
            above = [event for event in parsed if _closes(low, event)]
            if above:
                limit = min(above, key=lambda event: (event[1], event[0] == "last_affected"))
        if limit is None:
            out.append((low, None, False))
        else:
            out.append((low, limit[1], limit[0] == "last_affected"))
    return out


def _closes(low: Version, event: tuple[str, Version]) -> bool:
    """Whether ``event`` can end an interval opened at ``low``."""
    kind, bound = event
    if kind == "fixed":
        return bound > low
    return kind == "last_affected" and bound >= low


# -- parsing OSV documents -------------------------------------------------------------------
def _summary(doc: Mapping[str, Any]) -> str:
    text = doc.get("summary") or doc.get("details") or ""
    text = " ".join(str(text).split())
    return text if len(text) <= 300 else text[:297] + "..."


def compact_records(doc: object) -> dict[str, list[Any]]:
    """{normalised package: compact record} for one OSV document (PyPI entries only)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        return {}
    if doc.get("withdrawn"):
        return {}
    per_package: dict[str, list[AffectedRange]] = {}
    for entry in doc.get("affected") or []:
        if not isinstance(entry, dict):
            continue
        package = entry.get("package") or {}
        if not isinstance(package, dict) or str(package.get("ecosystem", "")) != "PyPI":
            continue
        name = package.get("name")
        if not isinstance(name, str):
            continue
        ranges: list[tuple[Event, ...]] = []
        for rng in entry.get("ranges") or []:
            if not isinstance(rng, dict) or rng.get("type") != "ECOSYSTEM":
                continue  # GIT ranges name commits, SEMVER is not used for PyPI
            events: list[Event] = []
            for event in rng.get("events") or []:
                if isinstance(event, dict):
                    for kind in ("introduced", "fixed", "last_affected"):
                        if kind in event:
                            events.append((kind, str(event[kind])))
            if events:
                ranges.append(tuple(events))
        versions = tuple(
            sorted({equality_key(str(v)) or str(v) for v in entry.get("versions") or [] if v})
        )
        if ranges or versions:
            per_package.setdefault(canonicalize_name(name), []).append(
                AffectedRange(tuple(ranges), versions)
            )
    if not per_package:
        return {}
    vectors = tuple(
        (str(s.get("type")), str(s.get("score")))
        for s in doc.get("severity") or []
        if isinstance(s, dict) and s.get("score")
    )
    db_specific = doc.get("database_specific")
    db_severity = db_specific.get("severity") if isinstance(db_specific, dict) else None
    references = tuple(
        str(r["url"])
        for r in (doc.get("references") or [])[:10]
        if isinstance(r, dict) and "url" in r
    )
    aliases = tuple(str(a) for a in doc.get("aliases") or [] if isinstance(a, str))
    return {
        name: OsvRecord(
            id=doc["id"],
            aliases=aliases,
            summary=_summary(doc),
            affected=tuple(affected),
            severity_vectors=vectors,
            database_severity=str(db_severity) if db_severity else None,
            references=references,
        ).to_compact()
        for name, affected in per_package.items()
    }


def _load_document(data: bytes, name: str) -> object:
    if name.endswith(".json"):
        return json.loads(data)
    import yaml

    # BaseLoader keeps every scalar a string: versions such as 1.10 must not become floats.
    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
    return yaml.load(data, Loader=loader)  # noqa: S506 - BaseLoader constructs no objects


def _modified(doc: object) -> str:
    value = doc.get("modified") if isinstance(doc, dict) else None
    return str(value) if value else ""


def _parse_files(paths: Sequence[str]) -> tuple[dict[str, list[list[Any]]], int, str]:
    """Index entries for some record files (a process-pool task), how many were bad, and the
    newest ``modified`` timestamp among them."""
    index: dict[str, list[list[Any]]] = {}
    bad = 0
    newest = ""
    for path in paths:
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_RECORD_BYTES + 1)
            if len(data) > MAX_RECORD_BYTES:
                bad += 1
                continue
            doc = _load_document(data, path)
        except Exception:  # a malformed record must not stop the others
            bad += 1
            continue
        newest = max(newest, _modified(doc))
        for name, record in compact_records(doc).items():
            index.setdefault(name, []).append(record)
    return index, bad, newest


def _merge(into: dict[str, list[list[Any]]], more: Mapping[str, list[list[Any]]]) -> None:
    for name, records in more.items():
        into.setdefault(name, []).extend(records)


# -- the database ----------------------------------------------------------------------------
@dataclass(frozen=True)
class DatabaseInfo:
    path: Path
    kind: str  # "osv-export" (all.zip) or "osv-directory"
    records: int
    packages: int
    bad_records: int
    date: datetime | None  # the newest record's `modified` (None: no record has one)
    sha256: str | None = None  # of all.zip, from `mlsec db update`'s metadata
    source_url: str | None = None

    def describe(self) -> str:
        when = self.date.strftime("%Y-%m-%d") if self.date else "unknown date"
        return f"osv-db:{self.path} ({when}, {self.records} records)"

    def age_days(self, now: datetime | None = None) -> float | None:
        if self.date is None:
            return None
        now = now or datetime.now(timezone.utc)
        return (now - self.date).total_seconds() / 86400


def _export_file(path: Path) -> tuple[Path, dict[str, Any]] | None:
    """(all.zip, metadata) when ``path`` is an export or a folder `mlsec db update` filled."""
    if path.is_file() and zipfile.is_zipfile(path):
        meta_file = path.parent / METADATA_FILE
        return path, _read_metadata(meta_file) if path.name == EXPORT_FILE else {}
    if path.is_dir() and (path / EXPORT_FILE).is_file():
        return path / EXPORT_FILE, _read_metadata(path / METADATA_FILE)
    return None


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _record_files(directory: Path) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every OSV record file under ``directory``."""
    found: list[tuple[str, int, int]] = []
    stack = [str(directory)]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif entry.name.endswith(_RECORD_SUFFIXES) and entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                found.append((entry.path, st.st_size, st.st_mtime_ns))
    found.sort()
    return found


_TIMESTAMP = re.compile(rb"\s*:\s*[\"']?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)")


def _newest_modified(paths: Sequence[str]) -> str:
    """The newest ``modified`` timestamp of the records, found without parsing them.

    Only the database's age is derived from this (never a match), so looking for the key in
    the raw text is enough, and much faster than parsing thousands of YAML files."""
    newest = b""
    for path in paths:
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_RECORD_BYTES)
        except OSError:
            continue
        at = data.find(b"modified")
        while at != -1:
            match = _TIMESTAMP.match(data, at + 8 + (data[at + 8 : at + 9] in (b'"', b"'")))
            if match is not None and match.group(1) > newest:
                newest = match.group(1)
            at = data.find(b"modified", at + 8)
    return newest.decode("ascii")


def _affected_names(path: str) -> set[str] | None:
    """Normalised PyPI package names a record file is about (None if it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            doc = _load_document(handle.read(MAX_RECORD_BYTES), path)
    except Exception:  # unreadable or malformed: the caller falls back to a full index
        return None
    names: set[str] = set()
    if isinstance(doc, dict):
        for entry in doc.get("affected") or []:
            package = entry.get("package") if isinstance(entry, dict) else None
            if isinstance(package, dict) and isinstance(package.get("name"), str):
                names.add(canonicalize_name(package["name"]))
    return names


FileStat = tuple[str, int, int]  # (path, size, mtime_ns)


def _package_folders(
    root: Path, files: Sequence[FileStat], *, verified: bool = False
) -> dict[str, list[FileStat]] | None:
    """Record files by package when the directory uses the PyPA layout (one folder per package
    holding that package's records, e.g. ``vulns/<package>/PYSEC-*.yaml``), else None.

    The layout is only trusted when every record sits one folder deep at the same depth and a
    sample of folders holds records about the package the folder is named after; anything
    else (flat folders, ecosystem folders, date folders) gets a full index. ``verified``
    skips the sampling (an unchanged database whose layout was checked before)."""
    groups: dict[str, list[FileStat]] = {}
    for stat in files:
        parent = os.path.dirname(stat[0])
        if Path(parent) == root:
            return None
        groups.setdefault(parent, []).append(stat)
    if len(groups) < 2 or len({p.count(os.sep) for p in groups}) != 1:
        return None
    ordered = sorted(groups)
    step = max(1, len(ordered) // 3)
    for parent in [] if verified else ordered[::step][:4]:
        names = _affected_names(groups[parent][0][0])
        if names is None or canonicalize_name(os.path.basename(parent)) not in names:
            return None
    by_package: dict[str, list[FileStat]] = {}
    for parent, stats in groups.items():
        by_package.setdefault(canonicalize_name(os.path.basename(parent)), []).extend(stats)
    return by_package


def _fingerprint(files: Sequence[FileStat]) -> str:
    digest = hashlib.sha256()
    for path, size, mtime in files:
        digest.update(f"{path}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return f"{len(files)}:{digest.hexdigest()}"


class OsvDatabase:
    """A local OSV database, indexed once and cached.

    Exports and arbitrary record folders get one index of the whole database. A folder in the
    PyPA layout (one sub-folder per package) is indexed per package instead, on demand: a scan
    parses only the folders of the packages it audits, so even a first scan with an empty cache
    stays fast, and later scans reuse the cached entries of unchanged folders.
    """

    def __init__(self, path: Path, *, cache_dir: Path | None = None) -> None:
        self.path = path.resolve()
        self.cache_dir = cache_dir
        if not self.path.exists():
            raise MlsecError(
                f"vulnerability database not found: {path}",
                hint="pass an OSV export (all.zip) or a directory of OSV records, or run "
                "`mlsec db update`",
            )
        self._index: dict[str, list[list[Any]]] | None = None
        self._meta: dict[str, Any] = {}
        self._bad = 0
        self._date: datetime | None = None
        self._kind = "osv-directory"
        self._cache: dict[str, tuple[OsvRecord, ...]] = {}
        self._files: list[FileStat] | None = None
        self._folders: dict[str, list[FileStat]] | None = None
        self._folder_index: dict[str, dict[str, Any]] = {}
        self._summary: dict[str, Any] = {}
        self._folder_index_dirty = False
        self._layout_checked = False

    # -- the per-package (PyPA) layout ---------------------------------------------------------
    def _package_layout(self) -> dict[str, list[FileStat]] | None:
        if not self._layout_checked:
            self._layout_checked = True
            if self.path.is_dir() and _export_file(self.path) is None:
                self._files = _record_files(self.path)
                self._read_folder_index()
                # The sampling parses a few records; skip it when the cached index describes
                # this very set of files.
                known = self._summary.get("fingerprint") == _fingerprint(self._files)
                self._folders = _package_folders(self.path, self._files, verified=known)
                if self._folders is None:
                    self._folder_index, self._summary = {}, {}
        return self._folders

    def _read_folder_index(self) -> None:
        index_file = self._index_file()
        if index_file is None:
            return
        try:
            data = json.loads(index_file.read_bytes())
        except (OSError, ValueError):
            return
        if (
            isinstance(data, dict)
            and data.get("format") == INDEX_FORMAT
            and data.get("layout") == "folders"
            and isinstance(data.get("folders"), dict)
        ):
            self._folder_index = data["folders"]
            summary = data.get("summary")
            self._summary = summary if isinstance(summary, dict) else {}

    def _save_folder_index(self) -> None:
        index_file = self._index_file()
        if index_file is None or not self._folder_index_dirty:
            return
        payload = {
            "format": INDEX_FORMAT,
            "layout": "folders",
            "database": str(self.path),
            "summary": self._summary,
            "folders": self._folder_index,
        }
        _write_json(index_file, payload)
        self._folder_index_dirty = False

    def prefetch(self, names: Iterable[str]) -> None:
        """Index the packages about to be queried in one go (parallel when there are many)."""
        folders = self._package_layout()
        if folders is None:
            self._load()
            return
        todo: dict[str, list[FileStat]] = {}
        for key in {str(canonicalize_name(n)) for n in names}:
            stats = folders.get(key)
            if stats is None:
                continue
            entry = self._folder_index.get(key)
            if entry is None or entry.get("fingerprint") != _fingerprint(stats):
                todo[key] = stats
        if todo:
            paths = [p for stats in todo.values() for p, _, _ in stats]
            index, bad, _newest = self._build_from_files(paths)
            for name, stats in todo.items():
                self._folder_index[name] = {
                    "fingerprint": _fingerprint(stats),
                    # A record is filed under the package it is about; ignore any others.
                    "records": index.get(name, []),
                }
            self._bad += bad
            self._folder_index_dirty = True
        self._save_folder_index()

    def _folder_records(self, name: str) -> list[list[Any]]:
        self.prefetch([name])
        entry = self._folder_index.get(name)
        return list(entry["records"]) if entry else []

    def summary(self) -> DatabaseInfo:
        """What a scan reports about the database, without indexing all of it."""
        folders = self._package_layout()
        if folders is None:
            return self.info()
        files = self._files or []
        fingerprint = _fingerprint(files)
        if self._summary.get("fingerprint") != fingerprint:
            self._summary = {
                "fingerprint": fingerprint,
                "newest": _newest_modified([p for p, _, _ in files]),
            }
            self._folder_index_dirty = True
            self._save_folder_index()
        return DatabaseInfo(
            path=self.path,
            kind="osv-directory",
            records=len(files),
            packages=len(folders),
            bad_records=self._bad,
            date=_timestamp(str(self._summary.get("newest", ""))),
        )

    # -- loading -----------------------------------------------------------------------------
    def _load(self) -> dict[str, list[list[Any]]]:
        if self._index is not None:
            return self._index
        export = _export_file(self.path)
        if export is not None:
            zip_path, self._meta = export
            self._kind = "osv-export"
            st = zip_path.stat()
            fingerprint = f"zip:{st.st_size}:{st.st_mtime_ns}"
            build = functools.partial(self._build_from_zip, zip_path)
        elif self.path.is_dir():
            files = _record_files(self.path)
            digest = hashlib.sha256()
            for path, size, mtime in files:
                digest.update(f"{path}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
            fingerprint = f"dir:{len(files)}:{digest.hexdigest()}"
            build = functools.partial(self._build_from_files, [p for p, _, _ in files])
        else:
            raise MlsecError(
                f"{self.path} is neither an OSV export (zip) nor a directory of OSV records",
                hint="download one with `mlsec db update`",
            )
        built = self._read_index(fingerprint)
        if built is None:
            built = build()
            self._write_index(fingerprint, built)
        self._index, self._bad, newest = built
        # File times say when a copy was made (a clone, a download); the records say how
        # fresh the data is. No record with a date: the age is unknown (and said so).
        self._date = _timestamp(newest)
        return self._index

    def _build_from_files(self, paths: list[str]) -> Built:
        if len(paths) < _PARALLEL_THRESHOLD or (os.cpu_count() or 1) < 2:
            return _parse_files(paths)
        from concurrent.futures import ProcessPoolExecutor

        workers = min(4, os.cpu_count() or 1)
        chunks = [paths[i::workers] for i in range(workers)]
        index: dict[str, list[list[Any]]] = {}
        bad = 0
        newest = ""
        try:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for part, part_bad, part_newest in pool.map(_parse_files, chunks):
                    _merge(index, part)
                    bad += part_bad
                    newest = max(newest, part_newest)
        except (OSError, RuntimeError):  # no process support (sandbox): do it here
            return _parse_files(paths)
        return index, bad, newest

    def _build_from_zip(self, zip_path: Path) -> Built:
        index: dict[str, list[list[Any]]] = {}
        bad = 0
        newest = ""
        try:
            with zipfile.ZipFile(zip_path) as archive:
                for info in archive.infolist():
                    if info.is_dir() or not info.filename.endswith(_RECORD_SUFFIXES):
                        continue
                    if info.file_size > MAX_RECORD_BYTES:
                        bad += 1
                        continue
                    try:
                        doc = _load_document(archive.read(info), info.filename)
                    except Exception:  # a malformed record must not stop the others
                        bad += 1
                        continue
                    newest = max(newest, _modified(doc))
                    _merge(index, {k: [v] for k, v in compact_records(doc).items()})
        except (OSError, zipfile.BadZipFile) as exc:
            raise MlsecError(
                f"cannot read the vulnerability database {zip_path}: {exc}",
                hint="download it again with `mlsec db update`",
            ) from None
        return index, bad, newest

    def _index_file(self) -> Path | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(str(self.path).encode("utf-8", "surrogateescape")).hexdigest()
        return self.cache_dir / "osv-index" / f"{key[:24]}.json"

    def _read_index(self, fingerprint: str) -> Built | None:
        index_file = self._index_file()
        if index_file is None:
            return None
        try:
            data = json.loads(index_file.read_bytes())
        except (OSError, ValueError):
            return None
        if (
            not isinstance(data, dict)
            or data.get("format") != INDEX_FORMAT
            or data.get("fingerprint") != fingerprint
            or not isinstance(data.get("packages"), dict)
        ):
            return None
        return data["packages"], int(data.get("bad_records", 0)), str(data.get("newest", ""))

    def _write_index(self, fingerprint: str, built: Built) -> None:
        index, bad, newest = built
        index_file = self._index_file()
        if index_file is None:
            return
        payload = {
            "format": INDEX_FORMAT,
            "fingerprint": fingerprint,
            "database": str(self.path),
            "bad_records": bad,
            "newest": newest,
            "packages": index,
        }
        _write_json(index_file, payload)

    # -- queries -----------------------------------------------------------------------------
    def info(self) -> DatabaseInfo:
        """Everything about the database (indexes all of it)."""
        folders = self._package_layout()
        if folders is not None:
            self.prefetch(folders)
            summary = self.summary()
            index: Mapping[str, list[list[Any]]] = {
                name: entry["records"] for name, entry in self._folder_index.items()
            }
            ids = {record[0] for records in index.values() for record in records}
            return DatabaseInfo(
                path=self.path,
                kind="osv-directory",
                records=len(ids),
                packages=sum(1 for records in index.values() if records),
                bad_records=self._bad,
                date=summary.date,
            )
        index = self._load()
        ids = {record[0] for records in index.values() for record in records}
        return DatabaseInfo(
            path=self.path,
            kind=self._kind,
            records=len(ids),
            packages=len(index),
            bad_records=self._bad,
            date=self._date,
            sha256=self._meta.get("sha256"),
            source_url=self._meta.get("url"),
        )

    def records(self, name: str) -> tuple[OsvRecord, ...]:
        key = canonicalize_name(name)
        if key not in self._cache:
            try:
                self._cache[key] = self._decode(key)
            except (TypeError, ValueError, IndexError, KeyError, AttributeError):
                # The cached index is damaged (or written by something else): drop it and
                # index the database again rather than trust or crash on it.
                self._discard_index()
                self._cache[key] = self._decode(key)
        return self._cache[key]

    def _decode(self, key: str) -> tuple[OsvRecord, ...]:
        if self._package_layout() is not None:
            raw = self._folder_records(key)
        else:
            raw = self._load().get(key, [])
        return tuple(OsvRecord.from_compact(r) for r in raw)

    def _discard_index(self) -> None:
        index_file = self._index_file()
        if index_file is not None:
            index_file.unlink(missing_ok=True)
        self.cache_dir = None
        self._index = None
        self._folder_index = {}
        self._summary = {}

    def advisories(self, name: str, version: str) -> list[Advisory]:
        """Every advisory affecting ``name`` at ``version``, aliases merged."""
        parsed = parse_version(version)
        records = self.records(name)
        if parsed is None:
            matched = [r for r in records if r.affects(version)]
        else:
            matched = [r for r in records if r.affects_parsed(parsed, version)]
        return merge_advisories(canonicalize_name(name), version, matched)


def _write_json(target: Path, payload: Any) -> None:
    from mlsec.safeopen import write_private

    # An index that cannot be cached only costs time on the next run.
    with contextlib.suppress(OSError):
        write_private(target, json.dumps(payload, separators=(",", ":")))


def _timestamp(value: str) -> datetime | None:
    if not value:
        return None
    try:  # OSV timestamps are RFC 3339 in UTC; seconds precision is all an age needs
        return datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


# -- merging, fix versions, severity ---------------------------------------------------------
def _id_rank(identifier: str) -> tuple[int, str]:
    # The same preference as pip-audit (PYSEC, then CVE, then the rest) so online and offline
    # findings name an advisory the same way.
    order = 0 if identifier.startswith("PYSEC") else 1 if identifier.startswith("CVE") else 2
    return order, identifier


def group_aliases(records: Sequence[OsvRecord]) -> list[list[OsvRecord]]:
    """Records partitioned so that records sharing any id or alias are together."""
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, record in enumerate(records):
        for identifier in (record.id, *record.aliases):
            if identifier in owner:
                parent[find(i)] = find(owner[identifier])
            else:
                owner[identifier] = i
    groups: dict[int, list[OsvRecord]] = {}
    for i, record in enumerate(records):
        groups.setdefault(find(i), []).append(record)
    return list(groups.values())


class _MergedGroup(NamedTuple):
    """What an alias group of records says whatever the version (computed once per group)."""

    ids: tuple[str, ...]
    summary: str
    fixes: tuple[tuple[Version, str], ...]  # every fixed bound, sorted
    severity: Severity | None
    vector: str | None
    score: float | None
    references: tuple[str, ...]


_GROUPS: dict[tuple[int, ...], tuple[tuple[OsvRecord, ...], _MergedGroup]] = {}


def _merged_group(group: Sequence[OsvRecord]) -> _MergedGroup:
    # Keyed on the records' identities, and holding them, so a key is never reused for
    # other records.
    key = tuple(id(r) for r in group)
    cached = _GROUPS.get(key)
    if cached is not None:
        return cached[1]
    ids = sorted({i for r in group for i in (r.id, *r.aliases)}, key=_id_rank)
    fixes: dict[str, Version] = {}
    for record in group:
        for affected in record.affected:
            for fix in affected.fixed_versions():
                parsed = parse_version(fix)
                if parsed is not None:
                    fixes[fix] = parsed
    severity, vector, score = group_severity(group)
    references: list[str] = []
    for record in group:
        references.extend(u for u in record.references if u not in references)
    merged = _MergedGroup(
        ids=tuple(ids),
        summary=next((r.summary for r in group if r.summary), ""),
        fixes=tuple(sorted(((v, t) for t, v in fixes.items()), key=lambda item: item[0])),
        severity=severity,
        vector=vector,
        score=score,
        references=tuple(references[:10]),
    )
    if len(_GROUPS) > 100_000:
        _GROUPS.clear()
    _GROUPS[key] = (tuple(group), merged)
    return merged


def merge_advisories(name: str, version: str, records: Sequence[OsvRecord]) -> list[Advisory]:
    out: list[Advisory] = []
    current = parse_version(version)
    for group in group_aliases(records):
        merged = _merged_group(group)
        out.append(
            Advisory(
                id=merged.ids[0],
                aliases=merged.ids[1:],
                package=name,
                version=version,
                summary=merged.summary,
                fix_versions=tuple(t for v, t in merged.fixes if current is None or v > current),
                severity=merged.severity,
                cvss_vector=merged.vector,
                cvss_score=merged.score,
                references=merged.references,
            )
        )
    out.sort(key=lambda a: _id_rank(a.id))
    return out


def fix_candidates(
    records: Iterable[OsvRecord], *, prereleases: bool = False, postreleases: bool = False
) -> list[tuple[Version, str]]:
    """The releases the package's records name (fixed bounds, listed versions, interval
    bounds), sorted: the only releases an offline audit knows of, so the only candidates for
    a fix. A pre- or dev-release (``fixed: 0.24.dev0``) stands for the final release it
    leads to (``0.24``) unless ``prereleases``; post-releases only with ``postreleases``."""
    named: set[str] = set()
    for record in records:
        for affected in record.affected:
            named.update(v for events in affected.ranges for _, v in events)
            named.update(affected.versions)
    candidates: dict[Version, str] = {}
    for text in named:
        parsed = parse_version(text)
        if parsed is None:
            continue
        parsed = public_version(parsed)
        if (parsed.is_prerelease or parsed.is_devrelease) and not prereleases:
            parsed = Version(parsed.base_version)
        if parsed.is_postrelease and not postreleases:
            continue
        candidates.setdefault(parsed, str(parsed))
    return sorted(candidates.items())


class FixFinder:
    """Smallest fixes for many versions of one package, sharing the work.

    Which records affect each candidate release is computed once per candidate (and kept),
    not once per audited version: a lock file or a large requirements set names hundreds of
    versions of the same package."""

    def __init__(self, records: Iterable[OsvRecord]) -> None:
        self.records = tuple(records)
        self._candidates: dict[tuple[bool, bool], list[tuple[Version, str]]] = {}
        self._affecting: dict[Version, frozenset[str]] = {}
        # (flags, relevant record ids, candidate index) -> index of the fix (-1: none): the
        # versions of one package share long runs of affected candidates.
        self._answers: dict[tuple[tuple[bool, bool], frozenset[str], int], int] = {}

    def _affected_by(self, parsed: Version, text: str) -> frozenset[str]:
        found = self._affecting.get(parsed)
        if found is None:
            found = frozenset(r.id for r in self.records if r.affects_parsed(parsed, text))
            self._affecting[parsed] = found
        return found

    def smallest_fix(self, version: str, advisories: Sequence[Advisory]) -> str | None:
        """The lowest release above ``version`` that no interval of the matched records
        covers; a pre-, dev- or post-release only when ``version`` is one itself."""
        import bisect

        current = parse_version(version)
        if current is None:
            return None
        current = public_version(current)
        flags = (current.is_prerelease or current.is_devrelease, current.is_postrelease)
        candidates = self._candidates.get(flags)
        if candidates is None:
            candidates = fix_candidates(self.records, prereleases=flags[0], postreleases=flags[1])
            self._candidates[flags] = candidates
        matched = {i for a in advisories for i in (a.id, *a.aliases)}
        relevant = frozenset(r.id for r in self.records if r.id in matched)
        start = bisect.bisect_right(candidates, current, key=lambda item: item[0])
        visited: list[int] = []
        answer = -1
        for index in range(start, len(candidates)):
            known = self._answers.get((flags, relevant, index))
            if known is not None:
                answer = known
                break
            visited.append(index)
            parsed, text = candidates[index]
            if relevant.isdisjoint(self._affected_by(parsed, text)):
                answer = index
                break
        for index in visited:
            self._answers[(flags, relevant, index)] = answer
        return candidates[answer][1] if answer >= 0 else None


def smallest_fix(
    version: str, advisories: Sequence[Advisory], records: Iterable[OsvRecord]
) -> str | None:
    """The lowest release above ``version`` that no interval of the matched records covers
    (see :class:`FixFinder`, which shares the work across versions of one package)."""
    return FixFinder(records).smallest_fix(version, advisories)


_CVSS_ORDER = ("CVSS_V4", "CVSS_V3", "CVSS_V2")
_DB_SEVERITY = {
    "CRITICAL": Severity.CRITICAL,
    "HIGH": Severity.HIGH,
    "MODERATE": Severity.MEDIUM,
    "MEDIUM": Severity.MEDIUM,
    "LOW": Severity.LOW,
}


@functools.lru_cache(maxsize=16384)
def cvss_base_score(kind: str, vector: str) -> float | None:
    """The CVSS base score of a vector, computed by the ``cvss`` library."""
    from cvss import CVSS2, CVSS3, CVSS4
    from cvss.exceptions import CVSSError

    try:
        if kind == "CVSS_V4":
            return float(CVSS4(vector).base_score)
        if kind == "CVSS_V3":
            return float(CVSS3(vector).scores()[0])
        if kind == "CVSS_V2":
            return float(CVSS2(vector).scores()[0])
    except (CVSSError, ValueError, KeyError, TypeError):
        return None
    return None


def score_severity(score: float) -> Severity:
    """CVSS qualitative rating (the v3/v4 bands)."""
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    return Severity.LOW


def group_severity(
    records: Sequence[OsvRecord],
) -> tuple[Severity | None, str | None, float | None]:
    """The worst severity of aliased records: CVSS base scores first, then the database's."""
    best: tuple[float, str] | None = None
    for record in records:
        for kind in _CVSS_ORDER:
            for vector_kind, vector in record.severity_vectors:
                if vector_kind != kind:
                    continue
                score = cvss_base_score(kind, vector)
                if score is not None and (best is None or score > best[0]):
                    best = (score, vector)
    if best is not None:
        return score_severity(best[0]), best[1], best[0]
    levels = [
        _DB_SEVERITY[r.database_severity.upper()]
        for r in records
        if r.database_severity and r.database_severity.upper() in _DB_SEVERITY
    ]
    if levels:
        return max(levels, key=lambda s: s.rank), None, None
    return None, None, None


# -- what a range allows -----------------------------------------------------------------------
class RangeExposure(NamedTuple):
    """Known-vulnerable releases a version range allows, and the floor that avoids them."""

    lowest: str  # the lowest known release the range allows (affected)
    vulnerable: int  # known releases the range allows that some advisory affects
    floor: str | None  # the lowest release above every affected one, itself unaffected
    ids: tuple[str, ...]  # advisories affecting the allowed releases (primary ids)


def _release_text(version: Version) -> str:
    # Listed versions are kept as equality keys ("2" for 2.0.0); "2.0" reads as a release.
    text = str(version)
    return f"{text}.0" if len(version.release) == 1 and version.epoch == 0 else text


def range_exposure(
    specifier: str | Sequence[str], records: Sequence[OsvRecord]
) -> RangeExposure | None:
    """What ``specifier`` allows of the releases the package's records name, when its lowest
    allowed one is known-vulnerable; None otherwise (or when nothing is known).

    An offline database has no list of every release; the records' listed, introduced and
    fixed versions are the releases known here. Pre-, dev- and post-releases are left out
    (an installer skips pre-releases, and a floor is a final release). A sequence of
    specifiers is a union (Poetry's ``||``)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        specs = [
            SpecifierSet(s) for s in ([specifier] if isinstance(specifier, str) else specifier)
        ]
    except InvalidSpecifier:
        return None
    if not specs:
        return None
    live = [r for r in records if not r.withdrawn]
    if not live:
        return None
    known: set[Version] = set()
    for record in live:
        for affected in record.affected:
            for events in affected.ranges:
                known.update(b for _, v in events if v != "0" and (b := parse_version(v)))
            known.update(b for v in affected.versions if (b := parse_version(v)))
    # A pre- or dev-release bound (fixed: 0.14.0rc1) stands for the release it leads to.
    releases = sorted(
        {
            Version(v.base_version) if (v.is_prerelease or v.is_devrelease) else v
            for v in map(public_version, known)
            if not v.is_postrelease
        }
    )
    allowed = [v for v in releases if any(spec.contains(v) for spec in specs)]
    if not allowed:
        return None
    by_release = {v: [r for r in live if r.affects(str(v))] for v in allowed}
    if not by_release[allowed[0]]:
        return None
    affected_allowed = [v for v in allowed if by_release[v]]
    worst = max(affected_allowed)
    floor = next(
        (v for v in releases if v > worst and not any(r.affects(str(v)) for r in live)), None
    )
    affecting = list({id(r): r for v in affected_allowed for r in by_release[v]}.values())
    ids = sorted(
        (
            min((i for r in group for i in (r.id, *r.aliases)), key=_id_rank)
            for group in group_aliases(affecting)
        ),
        key=_id_rank,
    )
    return RangeExposure(
        lowest=_release_text(allowed[0]),
        vulnerable=len(affected_allowed),
        floor=_release_text(floor) if floor is not None else None,
        ids=tuple(ids),
    )
