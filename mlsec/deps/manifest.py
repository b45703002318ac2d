"""What every manifest parser returns, and the helpers they share.

A parser turns one manifest (its text and its path relative to the scan root) into
:class:`ParsedManifest`: dependencies with the line they came from, requirements that cannot be
audited (URLs, editable installs, VCS checkouts, local paths) and problems (lines or files that
could not be parsed). Parsers never raise on bad input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from mlsec.facts import Dependency

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet


@dataclass(frozen=True)
class Unauditable:
    """A requirement no vulnerability database can answer for (no index release to look up)."""

    name: str | None  # normalised, when the requirement names its package
    text: str  # the requirement as written
    source: str
    line: int | None
    reason: str  # "editable install", "direct URL", "VCS checkout", "local path", ...
    dev: bool = False


@dataclass
class ParsedManifest:
    path: str  # relative to the scan root
    kind: str  # requirements, pyproject, uv.lock, poetry.lock, Pipfile.lock, pylock, ...
    lock: bool = False  # exact versions of the whole environment
    dependencies: list[Dependency] = field(default_factory=list)
    unauditable: list[Unauditable] = field(default_factory=list)
    problems: list[tuple[int | None, str]] = field(default_factory=list)  # (line, message)
    includes: list[str] = field(default_factory=list)  # other files this one pulled in


def normalise(name: str) -> str:
    """PEP 503 normalised package name."""
    return canonicalize_name(name)


def exact_version(specifier: SpecifierSet | str) -> str | None:
    """The one version a specifier allows (``==1.2.3`` or ``===1.2.3``), else None."""
    from packaging.specifiers import SpecifierSet

    specs = list(specifier if isinstance(specifier, SpecifierSet) else SpecifierSet(specifier))
    if len(specs) != 1:
        return None
    spec = specs[0]
    if spec.operator == "===" or (spec.operator == "==" and not spec.version.endswith(".*")):
        return spec.version
    return None


_VCS = re.compile(r"^(git|hg|svn|bzr)\+", re.IGNORECASE)


def url_reason(url: str) -> str:
    if _VCS.match(url):
        return "VCS checkout"
    if url.startswith("file:") or "://" not in url:
        return "local path"
    return "direct URL"


def from_requirement_string(
    text: str,
    *,
    source: str,
    line: int | None,
    manifest: ParsedManifest,
    dev: bool = False,
    direct: bool = True,
) -> None:
    """Parse one PEP 508 string into ``manifest`` (dependency, unauditable or problem)."""
    # Imported here: lock files never need it, and it is the slowest import of the audit.
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        manifest.problems.append((line, f"invalid requirement {text!r}: {exc}"))
        return
    name = normalise(req.name)
    if req.url:
        manifest.unauditable.append(
            Unauditable(name, text, source, line, url_reason(req.url), dev=dev)
        )
        return
    version = exact_version(req.specifier)
    manifest.dependencies.append(
        Dependency(
            name=name,
            version=version,
            specifier=str(req.specifier),
            source=source,
            line=line,
            pinned=version is not None,
            direct=direct,
            dev=dev,
        )
    )


def string_lines(text: str) -> list[str]:
    return text.splitlines()


class LineFinder:
    """Line numbers of values in formats whose parsers keep none (tomllib, json, configparser).

    The standard parsers give no positions, so we look the value up in the raw text, in order
    and after a starting line, which is exact for the way manifests are written (one entry per
    line) and falls back to the section's line otherwise.
    """

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def find(self, needles: Iterable[str], start: int = 1) -> int | None:
        """First 1-based line at or after ``start`` containing any of ``needles``."""
        wanted = [n for n in needles if n]
        for index in range(max(start, 1) - 1, len(self.lines)):
            line = self.lines[index]
            if any(n in line for n in wanted):
                return index + 1
        return None

    def header(self, pattern: str, start: int = 1) -> int | None:
        """Line of a TOML/INI table header matching the regular expression ``pattern``."""
        compiled = re.compile(pattern)
        for index in range(max(start, 1) - 1, len(self.lines)):
            if compiled.match(self.lines[index].strip()):
                return index + 1
        return None

    def headers(self, literal: str) -> list[int]:
        """Every line that is exactly the header ``literal`` (e.g. ``[[package]]``)."""
        return [i + 1 for i, line in enumerate(self.lines) if line.strip() == literal]

    def string_value(self, value: str, start: int = 1) -> int | None:
        """Line where the quoted string ``value`` appears (TOML/JSON literal)."""
        return self.find((f'"{value}"', f"'{value}'", _json_escaped(value)), start)


def _json_escaped(value: str) -> str:
    import json

    return json.dumps(value)


def quoted_key(name: str) -> Sequence[str]:
    """Ways a table key naming ``name`` is written: bare, double- or single-quoted."""
    return (f"{name} =", f"{name}=", f'"{name}" =', f'"{name}"=', f"'{name}' =")
