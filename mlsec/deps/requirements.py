"""pip requirements files (``requirements*.txt``, pip-tools ``*.in``, constraints files).

pip has no public parsing API, so the line syntax (continuations, comments, options, ``-r`` and
``-c`` includes) is handled here; each requirement itself is parsed by ``packaging``. Hashes and
markers are accepted; markers are not evaluated (every listed version is audited, whichever
environment installs it). URLs, editable installs and VCS checkouts are reported as
unauditable. Includes are followed inside the scan root only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from mlsec.deps.manifest import (
    ParsedManifest,
    Unauditable,
    from_requirement_string,
    normalise,
    shown,
    url_reason,
)
from mlsec.facts import Dependency

MAX_INCLUDE_DEPTH = 10
MAX_BYTES = 8 * 1024 * 1024

_COMMENT = re.compile(r"(^|\s+)#.*$")
# Per-requirement options (--hash=..., --config-settings ...) start at the first " -x"/" --x".
_OPTIONS_TAIL = re.compile(r"\s+--?[A-Za-z].*$")
_INCLUDE = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?=[^-\s]))(.+)$")
_EDITABLE = re.compile(r"^(-e|--editable)(?:\s*=\s*|\s+)(.+)$")
_EGG = re.compile(r"[#&]egg=([A-Za-z0-9][A-Za-z0-9._-]*)")
_WHEEL = re.compile(r"([A-Za-z0-9][A-Za-z0-9._]*)-\d[^/-]*(?:-[^/]*)?\.(?:whl|tar\.gz|zip)$")


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, line) with backslash continuations joined and comments removed."""
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buffer:
            start = number
        if raw.endswith("\\"):
            buffer.append(raw[:-1])
            continue
        buffer.append(raw)
        joined = _COMMENT.sub("", " ".join(buffer)).strip()
        buffer = []
        if joined:
            yield start, joined
    if buffer:
        joined = _COMMENT.sub("", " ".join(buffer)).strip()
        if joined:
            yield start, joined


def _logical_starts(text: str) -> dict[int, int]:
    """{physical line: first line of its logical line} for lines continued with ``\\``."""
    starts: dict[int, int] = {}
    start: int | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if start is not None:
            starts[number] = start
        start = (start or number) if raw.endswith("\\") else None
    return starts


def _name_from_url(url: str) -> str | None:
    if m := _EGG.search(url):
        return normalise(m.group(1))
    if m := _WHEEL.search(url.split("#", 1)[0].split("?", 1)[0]):
        return normalise(m.group(1))
    return None


def _looks_like_url_or_path(text: str) -> bool:
    return (
        "://" in text
        or text.startswith((".", "/", "~", "file:"))
        or bool(re.match(r"^[A-Za-z]:[\\/]", text))
        or text.endswith((".whl", ".tar.gz", ".zip"))
    )


class RequirementsParser:
    """Parses one requirements file and the files it includes, once each."""

    def __init__(self, root: Path, *, standalone: set[Path] | None = None) -> None:
        self.root = root.resolve()
        # Files that are manifests on their own: an include of one is parsed there, not here.
        self.standalone = standalone or set()

    def parse(self, path: Path, relpath: str) -> ParsedManifest:
        manifest = ParsedManifest(path=relpath, kind="requirements")
        constraints: dict[str, tuple[str, str, int]] = {}
        self._parse_file(path.resolve(), relpath, manifest, constraints, {path.resolve()}, 0)
        if constraints:
            manifest.dependencies = [
                self._constrain(dep, constraints) for dep in manifest.dependencies
            ]
        return manifest

    @staticmethod
    def _constrain(dep: Dependency, constraints: dict[str, tuple[str, str, int]]) -> Dependency:
        pinned = constraints.get(dep.name)
        if dep.pinned or pinned is None:
            return dep
        # The constraints file decides the version pip installs for this requirement: that
        # line is where the version is fixed (and where a fix goes).
        version, source, line = pinned
        return dep._replace(
            version=version, pinned=True, specifier=f"=={version}", source=source, line=line
        )

    def parse_line(
        self, path: Path, relpath: str, line: int, content: str, manifest: ParsedManifest
    ) -> None:
        """One requirements-syntax line found in another format (conda's ``pip:`` list)."""
        constraints: dict[str, tuple[str, str, int]] = {}
        self._line(path, relpath, line, content, manifest, constraints, {path.resolve()}, 0, False)

    def _relative(self, path: Path) -> str | None:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return None

    def _parse_file(
        self,
        path: Path,
        relpath: str,
        manifest: ParsedManifest,
        constraints: dict[str, tuple[str, str, int]],
        chain: set[Path],
        depth: int,
        *,
        as_constraints: bool = False,
    ) -> None:
        from mlsec.deps import read_manifest

        included = ParsedManifest(path=relpath, kind="requirements")
        text = read_manifest(path, included, limit=MAX_BYTES)
        if included.ignores and text is not None:
            # An ignore on a continuation line (after `\`, beside a --hash) belongs to the
            # requirement, which is known by the first line of its logical line.
            starts = _logical_starts(text)
            included.ignores = [
                i._replace(line=starts.get(i.line, i.line)) for i in included.ignores
            ]
        manifest.ignores.extend(included.ignores)
        manifest.problems.extend(
            (line, f"{relpath}: {message}" if relpath != manifest.path else message)
            for line, message in included.problems
        )
        if text is None:
            return
        for line, content in logical_lines(text):
            self._line(
                path, relpath, line, content, manifest, constraints, chain, depth, as_constraints
            )

    def _line(
        self,
        path: Path,
        relpath: str,
        line: int,
        content: str,
        manifest: ParsedManifest,
        constraints: dict[str, tuple[str, str, int]],
        chain: set[Path],
        depth: int,
        as_constraints: bool,
    ) -> None:
        if m := _INCLUDE.match(content):
            self._include(
                path,
                relpath,
                line,
                m.group(1),
                m.group(2).strip(),
                manifest,
                constraints,
                chain,
                depth,
            )
            return
        if m := _EDITABLE.match(content):
            target = m.group(2).strip()
            manifest.unauditable.append(
                Unauditable(_name_from_url(target), content, relpath, line, "editable install")
            )
            return
        if content.startswith("-"):
            return  # index, find-links and other global options do not name packages
        requirement = _OPTIONS_TAIL.sub("", content).strip()
        if _looks_like_url_or_path(requirement) and "@" not in requirement.split("://")[0]:
            manifest.unauditable.append(
                Unauditable(
                    _name_from_url(requirement),
                    requirement,
                    relpath,
                    line,
                    url_reason(requirement),
                )
            )
            return
        if as_constraints:
            probe = ParsedManifest(path=relpath, kind="constraints")
            from_requirement_string(requirement, source=relpath, line=line, manifest=probe)
            for dep in probe.dependencies:
                if dep.version is not None:
                    constraints.setdefault(dep.name, (dep.version, relpath, line))
            manifest.problems.extend(probe.problems)
            return
        from_requirement_string(requirement, source=relpath, line=line, manifest=manifest)

    def _include(
        self,
        path: Path,
        relpath: str,
        line: int,
        option: str,
        target: str,
        manifest: ParsedManifest,
        constraints: dict[str, tuple[str, str, int]],
        chain: set[Path],
        depth: int,
    ) -> None:
        is_constraint = option in ("-c", "--constraint")
        shown_target = shown(target)
        if "://" in target:
            manifest.problems.append((line, f"remote include {shown_target} not followed"))
            return
        try:
            included = (path.parent / target).resolve()
            included_rel = self._relative(included)
            exists = included_rel is not None and included.exists()
            regular = exists and included.is_file()
        except (OSError, ValueError, RuntimeError) as exc:
            # an embedded NUL, a name longer than the file system allows, a symlink loop
            if isinstance(exc, OSError):
                reason = exc.strerror or type(exc).__name__
            elif isinstance(exc, RuntimeError):
                reason = "symlink loop"
            else:
                reason = "embedded NUL byte" if "null" in str(exc) else str(exc)[:100]
            manifest.problems.append((line, f"include {shown_target} cannot be read: {reason}"))
            return
        if included_rel is None:
            manifest.problems.append((line, f"include {shown_target} is outside the scanned tree"))
            return
        if not exists:
            manifest.problems.append((line, f"included file {shown_target} not found"))
            return
        if not regular:
            manifest.problems.append((line, f"include {shown_target} is not a regular file"))
            return
        if included in chain or depth >= MAX_INCLUDE_DEPTH:
            manifest.problems.append((line, f"include {shown_target} loops or nests too deep"))
            return
        manifest.includes.append(included_rel)
        if is_constraint:
            manifest.constraints.append(included_rel)
        if not is_constraint and included in self.standalone:
            return  # audited as a manifest of its own
        self._parse_file(
            included,
            included_rel,
            manifest,
            constraints,
            chain | {included},
            depth + 1,
            as_constraints=is_constraint,
        )
