"""Lock files: ``uv.lock``, ``poetry.lock``, ``pdm.lock``, ``Pipfile.lock`` and PEP 751
``pylock.toml``.

Lock files give exact versions of the whole environment and, except Pipfile.lock, the
dependency edges (``depends_on``). They are TOML (``tomllib``) or JSON (``json``); neither keeps
positions, so each package's line is the line of its ``[[package]]`` header (the n-th header is
the n-th entry of the array) or, for JSON, of its key. Packages installed from VCS, URLs or
local paths are reported as unauditable: their version is not an index release.
"""

from __future__ import annotations

import json
import posixpath
import re
import sys
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from mlsec.deps.manifest import (
    LineFinder,
    ParsedManifest,
    Unauditable,
    name_problem,
    normalise,
)
from mlsec.facts import Dependency

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _load_toml(text: str, manifest: ParsedManifest) -> dict[str, Any] | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        manifest.problems.append((None, f"invalid TOML: {exc}"))
        return None


def _entries(
    data: Mapping[str, Any], key: str, finder: LineFinder, manifest: ParsedManifest
) -> list[tuple[dict[str, Any], int | None]]:
    packages = data.get(key, [])
    if not isinstance(packages, list):
        manifest.problems.append((None, f"'{key}' must be an array of tables"))
        return []
    lines = finder.headers(f"[[{key}]]")
    out: list[tuple[dict[str, Any], int | None]] = []
    for index, package in enumerate(packages):
        line = lines[index] if index < len(lines) else None
        if not isinstance(package, dict):
            manifest.problems.append((line, f"{key} entry must be a table"))
            continue
        problem = name_problem(package.get("name"))
        if problem is not None:
            manifest.problems.append((line, f"{key} entry: {problem}"))
            continue
        out.append((package, line))
    return out


def _edge_names(values: object) -> tuple[str, ...]:
    names: list[str] = []
    if isinstance(values, list):
        for item in values:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                names.append(normalise(item["name"]))
    elif isinstance(values, dict):
        names.extend(normalise(str(k)) for k in values)
    return tuple(sorted(set(names)))


def _reachable(roots: Iterable[str], edges: Mapping[str, Iterable[str]]) -> set[str]:
    seen: set[str] = set()
    queue = deque(roots)
    while queue:
        name = queue.popleft()
        if name in seen:
            continue
        seen.add(name)
        queue.extend(edges.get(name, ()))
    return seen


def _add_locked(
    manifest: ParsedManifest,
    package: Mapping[str, Any] | None,
    name: str,
    line: int | None,
    *,
    version: str | None = None,
    unauditable: str | None = None,
    label: str | None = None,
    **fields: Any,
) -> None:
    """One lock file entry. ``unauditable`` (why: "VCS checkout", ...) makes it an entry no
    database can audit; otherwise it is pinned to ``version``, or to the version the
    ``package`` table records (a missing one is a problem of the manifest)."""
    if unauditable is not None:
        manifest.unauditable.append(
            Unauditable(name, label or f"{name} ({unauditable})", manifest.path, line, unauditable)
        )
        return
    if version is None and package is not None:
        version = _version_or_problem(package, line, manifest)
    if version is None:
        return
    manifest.dependencies.append(
        Dependency(
            name=name,
            version=version,
            specifier=f"=={version}",
            source=manifest.path,
            line=line,
            pinned=True,
            **fields,
        )
    )


def _version_or_problem(
    package: Mapping[str, Any], line: int | None, manifest: ParsedManifest
) -> str | None:
    version = package.get("version")
    if isinstance(version, str) and version:
        return version
    manifest.problems.append((line, f"locked package {package.get('name')!r} has no version"))
    return None


# -- uv.lock ---------------------------------------------------------------------------------
def parse_uv_lock(text: str, relpath: str) -> ParsedManifest:
    manifest = ParsedManifest(path=relpath, kind="uv.lock", lock=True)
    data = _load_toml(text, manifest)
    if data is None:
        return manifest
    finder = LineFinder(text)
    entries = _entries(data, "package", finder, manifest)
    edges: dict[str, tuple[str, ...]] = {}
    roots: set[str] = set()
    main_roots: set[str] = set()
    dev_roots: set[str] = set()
    for package, _line in entries:
        name = normalise(package["name"])
        deps = set(_edge_names(package.get("dependencies")))
        for extra in (package.get("optional-dependencies") or {}).values():
            deps.update(_edge_names(extra))
        dev_deps: set[str] = set()
        for group in (package.get("dev-dependencies") or {}).values():
            dev_deps.update(_edge_names(group))
        edges[name] = tuple(sorted(deps | dev_deps))
        source = package.get("source") or {}
        if isinstance(source, dict) and ("editable" in source or "virtual" in source):
            roots.add(name)  # a workspace member: the project itself, not a dependency
            main_roots.update(deps)
            dev_roots.update(dev_deps)
            member = source.get("editable", source.get("virtual"))
            if isinstance(member, str):
                folder = _member_folder(relpath, member)
                if folder is not None:
                    manifest.covers.append(folder)
    manifest.first_party.update(roots)
    runtime = _reachable(main_roots, edges)
    for package, line in entries:
        name = normalise(package["name"])
        if name in roots:
            continue
        source = package.get("source") or {}
        reason = _source_reason(source) if isinstance(source, dict) else None
        _add_locked(
            manifest,
            package,
            name,
            line,
            unauditable=reason,
            direct=name in main_roots or name in dev_roots,
            depends_on=edges.get(name, ()),
            dev=bool(roots) and name not in runtime,
        )
    return manifest


def _member_folder(lock_path: str, member: str) -> str | None:
    """The folder (relative to the scan root) of a workspace member the lock file names by a
    path relative to its own folder; None when it leaves the scanned tree."""
    base = posixpath.dirname(lock_path)
    folder = posixpath.normpath(posixpath.join(base, member.replace("\\", "/")))
    if folder.startswith("../") or folder == ".." or posixpath.isabs(folder):
        return None
    return folder


def _source_reason(source: Mapping[str, Any]) -> str | None:
    if "git" in source:
        return "VCS checkout"
    if "url" in source:
        return "direct URL"
    if "path" in source or "directory" in source:
        return "local path"
    return None


# -- poetry.lock -----------------------------------------------------------------------------
def parse_poetry_lock(text: str, relpath: str) -> ParsedManifest:
    manifest = ParsedManifest(path=relpath, kind="poetry.lock", lock=True)
    data = _load_toml(text, manifest)
    if data is None:
        return manifest
    finder = LineFinder(text)
    for package, line in _entries(data, "package", finder, manifest):
        name = normalise(package["name"])
        source = package.get("source")
        if isinstance(source, dict) and source.get("type") in ("git", "url", "directory", "file"):
            kind = str(source.get("type"))
            reason = {"git": "VCS checkout", "url": "direct URL"}.get(kind, "local path")
            label = f"{name} ({kind} {source.get('url', '')})"
            _add_locked(manifest, package, name, line, unauditable=reason, label=label)
            continue
        groups = package.get("groups")
        in_main = "main" in groups if isinstance(groups, list) else package.get("category") != "dev"
        _add_locked(
            manifest,
            package,
            name,
            line,
            direct=False,
            depends_on=_edge_names(package.get("dependencies")),
            dev=not in_main,
        )
    return manifest


# -- pylock.toml (PEP 751) --------------------------------------------------------------------
def parse_pylock(text: str, relpath: str) -> ParsedManifest:
    manifest = ParsedManifest(path=relpath, kind="pylock", lock=True)
    data = _load_toml(text, manifest)
    if data is None:
        return manifest
    finder = LineFinder(text)
    for package, line in _entries(data, "packages", finder, manifest):
        name = normalise(package["name"])
        reason = None
        if "vcs" in package:
            reason = "VCS checkout"
        elif "directory" in package:
            reason = "local path"
        elif isinstance(package.get("archive"), dict):
            archive = package["archive"]
            reason = "direct URL" if "url" in archive else "local path"
        _add_locked(
            manifest,
            package,
            name,
            line,
            unauditable=reason,
            direct=False,
            depends_on=_edge_names(package.get("dependencies")),
        )
    return manifest


# -- Pipfile.lock ----------------------------------------------------------------------------
def parse_pipfile_lock(text: str, relpath: str) -> ParsedManifest:
    manifest = ParsedManifest(path=relpath, kind="Pipfile.lock", lock=True)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        manifest.problems.append((exc.lineno, f"invalid JSON: {exc.msg}"))
        return manifest
    if not isinstance(data, dict):
        manifest.problems.append((None, "Pipfile.lock must be a JSON object"))
        return manifest
    finder = LineFinder(text)
    for section, dev in (("default", False), ("develop", True)):
        entries = data.get(section, {})
        if not isinstance(entries, dict):
            manifest.problems.append((None, f"'{section}' must be an object"))
            continue
        start = finder.string_value(section) or 1
        for raw_name, spec in entries.items():
            line = finder.string_value(str(raw_name), start) or start
            problem = name_problem(raw_name)
            if problem is not None:
                manifest.problems.append((line, f"'{section}' entry: {problem}"))
                continue
            name = normalise(raw_name)
            if not isinstance(spec, dict):
                manifest.problems.append((line, f"entry {raw_name!r} must be an object"))
                continue
            reason = None
            if "git" in spec or "hg" in spec or "svn" in spec:
                reason = "VCS checkout"
            elif "path" in spec or spec.get("editable"):
                reason = "editable install" if spec.get("editable") else "local path"
            elif "file" in spec:
                reason = "direct URL"
            if reason is not None:
                manifest.unauditable.append(
                    Unauditable(name, f"{raw_name} ({reason})", relpath, line, reason, dev=dev)
                )
                continue
            version = spec.get("version")
            exact = None
            if isinstance(version, str) and version.startswith("=="):
                exact = version[2:].strip()
            if not exact:
                manifest.problems.append((line, f"locked package {raw_name!r} has no ==version"))
                continue
            _add_locked(
                manifest,
                None,
                name,
                line,
                version=exact,
                direct=False,
                dev=dev,
            )
    return manifest


# -- pdm.lock --------------------------------------------------------------------------------
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _requirement_names(values: object) -> tuple[str, ...]:
    """Package names of a list of PEP 508 strings (pdm.lock's ``dependencies``)."""
    if not isinstance(values, list):
        return ()
    names = {
        normalise(m.group(1))
        for v in values
        if isinstance(v, str) and (m := _REQUIREMENT_NAME.match(v)) is not None
    }
    return tuple(sorted(names))


def parse_pdm_lock(text: str, relpath: str) -> ParsedManifest:
    """``pdm.lock``: one ``[[package]]`` per locked release (a package locked with extras is
    listed once more with ``extras``: audited once); ``groups`` (lock format 4.4 and later)
    says whether a package is a development dependency."""
    manifest = ParsedManifest(path=relpath, kind="pdm.lock", lock=True)
    data = _load_toml(text, manifest)
    if data is None:
        return manifest
    finder = LineFinder(text)
    seen: set[tuple[str, str]] = set()
    for package, line in _entries(data, "package", finder, manifest):
        name = normalise(package["name"])
        version = package.get("version")
        key = (name, version if isinstance(version, str) else "")
        if key in seen:
            continue
        seen.add(key)
        reason = None
        label = None
        if "git" in package or "hg" in package or "svn" in package:
            reason = "VCS checkout"
            label = f"{name} (VCS {package.get('git') or package.get('hg') or package.get('svn')})"
        elif "url" in package:
            reason = "direct URL"
        elif "path" in package:
            reason = "editable install" if package.get("editable") else "local path"
        groups = package.get("groups")
        dev = isinstance(groups, list) and bool(groups) and "default" not in groups
        _add_locked(
            manifest,
            package,
            name,
            line,
            unauditable=reason,
            label=label,
            direct=False,
            depends_on=_requirement_names(package.get("dependencies")),
            dev=dev,
        )
    return manifest
