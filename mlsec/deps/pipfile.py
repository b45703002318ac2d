"""``Pipfile`` (pipenv): ``[packages]``, ``[dev-packages]`` and custom package categories.

TOML read with ``tomllib``. A value is a version specifier (``"*"`` for any version, ``"==1.2"``
pins; pipenv reads a bare ``"1.2"`` as ``==1.2``) or a table (``version``, or ``git`` / ``path``
/ ``file`` / ``editable`` for what no database can audit). Pins are audited; ranges are
reported as unpinned unless ``Pipfile.lock`` beside it fixes them.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from mlsec.deps.manifest import (
    LineFinder,
    ParsedManifest,
    Unauditable,
    exact_version,
    name_problem,
    normalise,
    shown,
)
from mlsec.facts import Dependency

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Tables of a Pipfile that are not package categories.
_NOT_CATEGORIES = {"source", "requires", "pipenv", "scripts"}


def parse_pipfile(text: str, relpath: str) -> ParsedManifest:
    manifest = ParsedManifest(path=relpath, kind="Pipfile")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        manifest.problems.append((None, f"invalid TOML: {exc}"))
        return manifest
    finder = LineFinder(text)
    for category, table in data.items():
        if category in _NOT_CATEGORIES or not isinstance(table, dict):
            continue
        start = finder.header(r"^\[\s*[\"']?" + re.escape(category) + r"[\"']?\s*\]$") or 1
        for raw_name, spec in table.items():
            line = finder.key(str(raw_name), start) or start
            problem = name_problem(raw_name)
            if problem is not None:
                manifest.problems.append((line, f"[{category}]: {problem}"))
                continue
            _entry(manifest, raw_name, spec, line, dev=category != "packages")
    return manifest


def _entry(manifest: ParsedManifest, raw_name: str, spec: Any, line: int, *, dev: bool) -> None:
    name = normalise(raw_name)
    version: Any = spec
    if isinstance(spec, dict):
        for key, reason in (
            ("git", "VCS checkout"),
            ("hg", "VCS checkout"),
            ("svn", "VCS checkout"),
            ("file", "direct URL"),
            ("path", "local path"),
        ):
            if key in spec:
                if spec.get("editable"):
                    reason = "editable install"
                text = f"{raw_name} = {{{key} = {shown(str(spec[key]))}}}"
                manifest.unauditable.append(
                    Unauditable(name, text, manifest.path, line, reason, dev=dev)
                )
                return
        version = spec.get("version", "*")
    if not isinstance(version, str):
        manifest.problems.append((line, f"{shown(raw_name)}: the version must be a string"))
        return
    version = version.strip()
    if version in ("", "*"):
        specifier = ""
    elif version[0].isdigit():
        specifier = f"=={version}"  # pipenv reads a bare version as an exact pin
    else:
        specifier = version
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        parsed = SpecifierSet(specifier)
    except InvalidSpecifier:
        manifest.problems.append((line, f"{shown(raw_name)}: invalid version {shown(version)}"))
        return
    exact = exact_version(parsed)
    manifest.dependencies.append(
        Dependency(
            name=name,
            version=exact,
            specifier=str(parsed),
            source=manifest.path,
            line=line,
            pinned=exact is not None,
            dev=dev,
        )
    )
