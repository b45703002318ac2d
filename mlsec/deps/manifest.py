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
from typing import TYPE_CHECKING, NamedTuple

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


class InlineIgnore(NamedTuple):
    """``# mlsec: ignore[MLS201,MLS210] reason`` on one line of a manifest."""

    source: str  # manifest path relative to the scan root
    line: int
    rules: tuple[str, ...]  # rule ids or prefixes
    reason: str  # empty: the comment does not apply (a reason is required)


@dataclass
class ParsedManifest:
    path: str  # relative to the scan root
    kind: str  # requirements, pyproject, uv.lock, poetry.lock, Pipfile.lock, pylock, ...
    lock: bool = False  # exact versions of the whole environment
    dependencies: list[Dependency] = field(default_factory=list)
    unauditable: list[Unauditable] = field(default_factory=list)
    problems: list[tuple[int | None, str]] = field(default_factory=list)  # (line, message)
    includes: list[str] = field(default_factory=list)  # other files this one pulled in
    constraints: list[str] = field(default_factory=list)  # files it includes with -c
    ignores: list[InlineIgnore] = field(default_factory=list)
    # Folders (relative to the scan root) whose manifests this lock file covers besides its
    # own: the members of a uv workspace.
    covers: list[str] = field(default_factory=list)
    first_party: set[str] = field(default_factory=set)  # the project's own packages
    # Requirements that could not be read because they are computed at run time (setup.py)
    dynamic: list[tuple[int | None, str]] = field(default_factory=list)


# -- text as pip reads it ----------------------------------------------------------------------
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def decode_text(data: bytes) -> tuple[str, str | None]:
    """Text of a manifest decoded as pip decodes requirements files (``auto_decode``): a
    byte-order mark picks UTF-8, UTF-16 or UTF-32 (what ``pip freeze >`` writes in Windows
    PowerShell); otherwise UTF-8. Returns the text and a problem when it was not valid
    (undecodable bytes are replaced, so the rest of the file is still audited)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            body = data[len(bom) :]
            try:
                return body.decode(encoding), None
            except UnicodeDecodeError as exc:
                return body.decode(encoding, errors="replace"), f"not valid {encoding}: {exc}"
    head = data[:400]
    if head.count(b"\x00") > len(head) // 4:
        # NUL bytes are valid UTF-8, so text that is mostly NULs would parse as garbage
        return "", "looks like UTF-16 without a byte-order mark; not read"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return data.decode("utf-8", errors="replace"), f"not UTF-8 text: {exc}"


_IGNORE = re.compile(r"#\s*mlsec:\s*ignore\[([A-Za-z0-9_,\s]*)\](.*)$")


def inline_ignores(text: str, source: str) -> list[InlineIgnore]:
    """Every ``# mlsec: ignore[...] reason`` comment of a manifest's text, by line."""
    if "mlsec:" not in text:
        return []
    out: list[InlineIgnore] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _IGNORE.search(line)
        if match is None:
            continue
        rules = tuple(r.strip().upper() for r in match.group(1).split(",") if r.strip())
        reason = " ".join(match.group(2).split())[:300]
        if rules:
            out.append(InlineIgnore(source, number, rules, reason))
    return out


MAX_NAME_LENGTH = 200  # PyPI's longest project names are far shorter
_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a package name (wrong type, too long, control bytes), or None."""
    if not isinstance(name, str):
        return f"package name must be a string, not {type(name).__name__}"
    if len(name) > MAX_NAME_LENGTH:
        return f"package name longer than {MAX_NAME_LENGTH} characters"
    if not _NAME.match(name):
        return f"invalid package name {shown(name)}"
    return None


def shown(text: str, limit: int = 80) -> str:
    """``text`` quoted for a message, shortened (it comes from a scanned file)."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


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


_PINNED = re.compile(
    r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*==\s*([0-9][0-9A-Za-z.!+_-]*)\s*$"
)
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
    fast = _PINNED.match(text)
    if fast is not None and len(fast.group(1)) <= MAX_NAME_LENGTH:
        # `name==version`, most lines of a lock or a pinned requirements file: packaging's
        # parser costs ~0.15 ms a line, ~5 s for 30,000 pins; the result is the same.
        from mlsec.deps.osv import parse_version

        parsed = parse_version(fast.group(2))
        if parsed is not None:
            version = fast.group(2)
            manifest.dependencies.append(
                Dependency(
                    name=normalise(fast.group(1)),
                    version=version,
                    specifier=f"=={version}",
                    source=source,
                    line=line,
                    pinned=True,
                    direct=direct,
                    dev=dev,
                )
            )
            return
    # Imported here: lock files never need it, and it is the slowest import of the audit.
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        manifest.problems.append((line, f"invalid requirement {shown(text)}: {exc}"))
        return
    if len(req.name) > MAX_NAME_LENGTH:
        manifest.problems.append((line, f"invalid requirement {shown(text)}: name too long"))
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
