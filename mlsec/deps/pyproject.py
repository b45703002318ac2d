"""``pyproject.toml``: PEP 621 dependencies and extras, PEP 735 dependency groups, Poetry tables,
Hatch environments, PDM and uv development dependencies, uv workspace sources.

Parsed with ``tomllib``; since it keeps no positions, lines come from
:class:`~mlsec.deps.manifest.LineFinder`. Poetry constraints (``^1.2``, ``~1.2``, ``1.2.3``) are
translated only as far as deciding whether they pin one version: a bare version or ``==x`` does.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

from mlsec.deps.manifest import (
    LineFinder,
    ParsedManifest,
    Unauditable,
    from_requirement_string,
    normalise,
)
from mlsec.facts import Dependency

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def parse_pyproject(text: str, relpath: str) -> ParsedManifest:
    manifest = ParsedManifest(path=relpath, kind="pyproject")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        manifest.problems.append((None, f"invalid TOML: {exc}"))
        return manifest
    finder = LineFinder(text)
    project = data.get("project")
    if isinstance(project, dict):
        start = finder.header(r"^\[project\]$") or 1
        _strings(project.get("dependencies"), "project.dependencies", finder, start, manifest)
        extras = project.get("optional-dependencies")
        if isinstance(extras, dict):
            start = finder.header(r"^\[project\.optional-dependencies\]$") or start
            for extra, values in extras.items():
                at = finder.key(str(extra), start) or start
                _strings(values, f"optional-dependencies.{extra}", finder, at, manifest)
    groups = data.get("dependency-groups")
    if isinstance(groups, dict):
        start = finder.header(r"^\[dependency-groups\]$") or 1
        for group, values in groups.items():
            at = finder.key(str(group), start) or start
            if isinstance(values, list):
                # {include-group = "x"} entries reference other groups, already listed.
                values = [v for v in values if isinstance(v, str)]
            _strings(values, f"dependency-groups.{group}", finder, at, manifest, dev=True)
    tool = data.get("tool")
    if not isinstance(tool, dict):
        return manifest
    poetry = tool.get("poetry")
    if isinstance(poetry, dict):
        _poetry(poetry, finder, manifest)
    _hatch(tool.get("hatch"), finder, manifest)
    _pdm(tool.get("pdm"), finder, manifest)
    _uv(tool.get("uv"), finder, manifest)
    if isinstance(project, dict) and isinstance(project.get("name"), str):
        manifest.first_party.add(normalise(project["name"]))
    return manifest


def _hatch(hatch: object, finder: LineFinder, manifest: ParsedManifest) -> None:
    """Hatch environments (``[tool.hatch.envs.<env>]``): what ``hatch run`` installs for
    tests, docs and linting beside the project - development dependencies."""
    envs = hatch.get("envs") if isinstance(hatch, dict) else None
    if not isinstance(envs, dict):
        return
    for env, body in envs.items():
        if not isinstance(body, dict):
            continue
        env_name = re.escape(str(env)[:200])
        start = finder.header(rf"^\[tool\.hatch\.envs\.[\"']?{env_name}[\"']?\]$") or 1
        for key in ("dependencies", "extra-dependencies"):
            values = body.get(key)
            at = finder.find((f"{key} =", f"{key}="), start) or start
            _strings(values, f"tool.hatch.envs.{env}.{key}", finder, at, manifest, dev=True)


def _pdm(pdm: object, finder: LineFinder, manifest: ParsedManifest) -> None:
    """PDM's development groups (``[tool.pdm.dev-dependencies]``); an entry may be an
    editable install of a local path (``-e file:///${PROJECT_ROOT}/sub``)."""
    groups = pdm.get("dev-dependencies") if isinstance(pdm, dict) else None
    if not isinstance(groups, dict):
        return
    start = finder.header(r"^\[tool\.pdm\.dev-dependencies\]$") or 1
    for group, values in groups.items():
        at = finder.key(str(group)[:200], start) or start
        if isinstance(values, list):
            kept: list[object] = []
            for value in values:
                if isinstance(value, str) and value.lstrip().startswith("-e"):
                    line = finder.string_value(value, at) or at
                    manifest.unauditable.append(
                        Unauditable(None, value, manifest.path, line, "editable install", dev=True)
                    )
                else:
                    kept.append(value)
            values = kept
        _strings(values, f"tool.pdm.dev-dependencies.{group}", finder, at, manifest, dev=True)


def _uv(uv: object, finder: LineFinder, manifest: ParsedManifest) -> None:
    """uv's legacy ``dev-dependencies`` list, and ``[tool.uv.sources]`` entries naming
    workspace members (``{ workspace = true }``): those are the project's own packages."""
    if not isinstance(uv, dict):
        return
    start = finder.header(r"^\[tool\.uv\]$") or 1
    if "dev-dependencies" in uv:
        at = finder.find(("dev-dependencies",), start) or start
        _strings(
            uv.get("dev-dependencies"), "tool.uv.dev-dependencies", finder, at, manifest, dev=True
        )
    sources = uv.get("sources")
    if isinstance(sources, dict):
        for name, source in sources.items():
            if isinstance(source, dict) and source.get("workspace") is True:
                manifest.first_party.add(normalise(str(name)))


def _strings(
    values: object,
    where: str,
    finder: LineFinder,
    start: int,
    manifest: ParsedManifest,
    *,
    dev: bool = False,
) -> None:
    if values is None:
        return
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        manifest.problems.append((start, f"{where} must be a list of requirement strings"))
        return
    cursor = start
    for value in values:
        line = finder.string_value(value, cursor)
        if line is not None:
            cursor = line
        from_requirement_string(
            value, source=manifest.path, line=line or start, manifest=manifest, dev=dev
        )


def _poetry(poetry: Mapping[str, Any], finder: LineFinder, manifest: ParsedManifest) -> None:
    tables: list[tuple[str, Any, bool]] = [
        (r"^\[tool\.poetry\.dependencies\]$", poetry.get("dependencies"), False),
        (r"^\[tool\.poetry\.dev-dependencies\]$", poetry.get("dev-dependencies"), True),
    ]
    groups = poetry.get("group")
    if isinstance(groups, dict):
        for group, body in groups.items():
            if isinstance(body, dict):
                header = rf"^\[tool\.poetry\.group\.[\"']?{group}[\"']?\.dependencies\]$"
                tables.append((header, body.get("dependencies"), group != "main"))
    for header, table, dev in tables:
        if table is None:
            continue
        start = finder.header(header) or 1
        if not isinstance(table, dict):
            manifest.problems.append((start, "Poetry dependencies must be a table"))
            continue
        for name, spec in table.items():
            if str(name).lower() == "python":
                continue
            line = finder.key(str(name), start) or start
            _poetry_entry(str(name), spec, line, manifest, dev)


def _poetry_entry(name: str, spec: object, line: int, manifest: ParsedManifest, dev: bool) -> None:
    if isinstance(spec, list):  # multiple-constraint form: one entry per marker set
        for item in spec:
            _poetry_entry(name, item, line, manifest, dev)
        return
    version: object = spec
    if isinstance(spec, dict):
        for key, reason in (("git", "VCS checkout"), ("path", "local path"), ("url", "direct URL")):
            if key in spec:
                manifest.unauditable.append(
                    Unauditable(
                        normalise(name),
                        f"{name} = {{{key} = {spec[key]!r}}}",
                        manifest.path,
                        line,
                        reason,
                        dev=dev,
                    )
                )
                return
        version = spec.get("version", "*")
    if not isinstance(version, str):
        manifest.problems.append((line, f"Poetry dependency {name!r} has no version string"))
        return
    exact = poetry_exact(version)
    manifest.dependencies.append(
        Dependency(
            name=normalise(name),
            version=exact,
            specifier=version,
            source=manifest.path,
            line=line,
            pinned=exact is not None,
            dev=dev,
        )
    )


def poetry_exact(constraint: str) -> str | None:
    """The version a Poetry constraint pins: ``1.2.3`` and ``==1.2.3`` do, ranges do not."""
    from packaging.version import InvalidVersion, Version

    text = constraint.strip()
    if text.startswith("=="):
        text = text[2:].strip()
    elif text.startswith("="):
        text = text[1:].strip()
    if not text or any(c in text for c in "^~<>!*,| "):
        return None
    try:
        Version(text)
    except InvalidVersion:
        return None
    return text


def poetry_specifiers(constraint: str) -> list[str] | None:
    """A Poetry version constraint as PEP 440 specifiers, one per ``||`` alternative
    (``^1.2.3`` is ``>=1.2.3,<2.0.0``, ``~1.2`` is ``>=1.2,<1.3``); None if it is not one."""
    out: list[str] = []
    for alternative in constraint.split("||"):
        parts: list[str] = []
        joined = re.sub(r"(\^|~=|~|==|!=|>=|<=|>|<|=)\s+", r"\1", alternative.strip())
        for raw in re.split(r"[,\s]+", joined):
            if not raw or raw == "*":
                continue
            translated = _poetry_part(raw)
            if translated is None:
                return None
            parts.append(translated)
        out.append(",".join(parts))
    return out or None


def _poetry_part(part: str) -> str | None:
    match = re.fullmatch(r"(\^|~=|~|==|!=|>=|<=|>|<|=)?\s*([0-9][0-9A-Za-z.*+!_-]*)", part)
    if match is None:
        return None
    operator, version = match.group(1) or "", match.group(2)
    numbers = version.split(".")
    if operator == "^":
        release = [int(n) if n.isdigit() else 0 for n in numbers[:3]]
        first = next((i for i, n in enumerate(release) if n), len(release) - 1)
        upper = release[: first + 1]
        upper[-1] += 1
        return f">={version},<{'.'.join(map(str, upper))}"
    if operator == "~":
        release = [int(n) if n.isdigit() else 0 for n in numbers[:3]]
        keep = release[:2] if len(release) > 1 else release[:1]
        keep[-1] += 1
        return f">={version},<{'.'.join(map(str, keep))}"
    if operator in ("", "="):
        return f"=={version}"
    return f"{operator}{version}"
