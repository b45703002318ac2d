"""Dependency manifests: which files they are, and parsing them into dependencies.

One module per source format (requirements files and their ``requirements*.lock`` variants,
pyproject.toml, lock files, Pipfile, setup.cfg, setup.py read statically, conda environment
files); :func:`parse_manifests` picks the parser from the file name. The
vulnerability matching lives in :mod:`mlsec.deps.osv` (offline database) and
:mod:`mlsec.deps.service` (pip-audit services online, and the adapter both share).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # parsing pulls in `packaging`; knowing which files are manifests must not
    from mlsec.deps.manifest import ParsedManifest
    from mlsec.deps.requirements import RequirementsParser

MAX_MANIFEST_BYTES = 16 * 1024 * 1024

_REQUIREMENTS_NAME = re.compile(r"(^|[-_.])(requirements|reqs|constraints)([-_.]|$)", re.I)
_REQUIREMENTS_DIRS = {"requirements", "reqs"}


_REQUIREMENTS_LOCK = re.compile(r"requirements([-_.][^/]*)?\.lock", re.I)
# What every name the patterns below can match ends with (lower-cased).
_MANIFEST_ENDINGS = (".toml", ".yml", ".yaml", ".lock", ".txt", ".in")


def manifest_kind(relpath: str) -> str | None:
    """The manifest format of a file, from its name; None if it is not a manifest."""
    name = relpath.rpartition("/")[2]
    exact = _EXACT_NAMES.get(name)
    if exact is not None:
        return exact
    lower = name.lower()
    if not lower.endswith(_MANIFEST_ENDINGS):  # most files; asked of every file in the tree
        return None
    path = PurePosixPath(relpath)
    if re.fullmatch(r"pylock(\.[^.]+)?\.toml", name):
        return "pylock"
    if re.fullmatch(r"environment([-_.][^/]*)?\.ya?ml", lower):
        return "environment.yml"
    if _REQUIREMENTS_LOCK.fullmatch(name):
        return "requirements"  # rye and `uv export` write requirements syntax
    if path.suffix.lower() in (".txt", ".in"):
        stem = lower.rsplit(".", 1)[0]
        parent = path.parent.name.lower()
        if _REQUIREMENTS_NAME.search(stem) or parent in _REQUIREMENTS_DIRS:
            return "requirements"
    return None


_EXACT_NAMES = {
    "pyproject.toml": "pyproject",
    "uv.lock": "uv.lock",
    "poetry.lock": "poetry.lock",
    "pdm.lock": "pdm.lock",
    "Pipfile": "Pipfile",
    "Pipfile.lock": "Pipfile.lock",
    "setup.cfg": "setup.cfg",
    "setup.py": "setup.py",
}


def parse_manifest(
    path: Path, relpath: str, kind: str, *, root: Path, standalone: set[Path]
) -> ParsedManifest:
    """Parse one manifest; problems are recorded in the result, never raised.

    Whatever a hostile file does to a parser (nesting deeper than the recursion limit, a
    name the file system refuses, a bug of ours) costs only this manifest: it becomes a
    problem of this file and the audit goes on with the others."""
    from mlsec.deps.manifest import ParsedManifest

    try:
        return _parse(path, relpath, kind, root=root, standalone=standalone)
    except RecursionError:
        problem = "nested too deeply to be parsed"
    except MemoryError:
        problem = "too large to be parsed"
    except Exception as exc:
        problem = f"could not be parsed ({type(exc).__name__}: {str(exc)[:200]})"
    manifest = ParsedManifest(path=relpath, kind=kind)
    manifest.problems.append((None, f"{problem}; its dependencies were not audited"))
    return manifest


def read_manifest(path: Path, manifest: ParsedManifest, *, limit: int) -> str | None:
    """The decoded text of a manifest file, or None (a problem is recorded)."""
    from mlsec.deps.manifest import decode_text, inline_ignores
    from mlsec.safeopen import open_regular

    try:
        with open_regular(path) as handle:
            data = handle.read(limit + 1)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        manifest.problems.append((None, f"cannot read: {reason}"))
        return None
    if len(data) > limit:
        manifest.problems.append((None, f"larger than {limit} bytes; not parsed"))
        return None
    text, problem = decode_text(data)
    if problem is not None:
        manifest.problems.append((None, problem))
    manifest.ignores.extend(inline_ignores(text, manifest.path))
    return text


def _parse(
    path: Path, relpath: str, kind: str, *, root: Path, standalone: set[Path]
) -> ParsedManifest:
    from mlsec.deps.manifest import ParsedManifest
    from mlsec.deps.requirements import RequirementsParser

    parser = RequirementsParser(root, standalone=standalone)
    if kind == "requirements":
        return parser.parse(path, relpath)
    probe = ParsedManifest(path=relpath, kind=kind)
    text = read_manifest(path, probe, limit=MAX_MANIFEST_BYTES)
    if text is None:
        return probe
    manifest = _parse_text(text, relpath, kind, path=path, parser=parser)
    manifest.problems[:0] = probe.problems
    manifest.ignores[:0] = probe.ignores
    return manifest


def _parse_text(
    text: str, relpath: str, kind: str, *, path: Path, parser: RequirementsParser
) -> ParsedManifest:
    if kind == "pyproject":
        from mlsec.deps.pyproject import parse_pyproject

        return parse_pyproject(text, relpath)
    if kind == "setup.cfg":
        from mlsec.deps.setupcfg import parse_setup_cfg

        return parse_setup_cfg(text, relpath)
    if kind == "setup.py":
        from mlsec.deps.setuppy import parse_setup_py

        return parse_setup_py(text, relpath)
    if kind == "Pipfile":
        from mlsec.deps.pipfile import parse_pipfile

        return parse_pipfile(text, relpath)
    if kind == "environment.yml":
        from mlsec.deps.conda import parse_environment_yml

        return parse_environment_yml(text, relpath, path=path, parser=parser)
    from mlsec.deps import locks

    parsers = {
        "uv.lock": locks.parse_uv_lock,
        "poetry.lock": locks.parse_poetry_lock,
        "pdm.lock": locks.parse_pdm_lock,
        "Pipfile.lock": locks.parse_pipfile_lock,
        "pylock": locks.parse_pylock,
    }
    return parsers[kind](text, relpath)


def parse_manifests(files: Sequence[tuple[Path, str]], root: Path) -> list[ParsedManifest]:
    """Parse every manifest among ``files`` ((absolute path, relative path) pairs).

    A requirements file that another manifest includes with ``-c`` is a constraints file: it
    constrains the versions of what that manifest requires and is not audited a second time
    as a manifest of its own."""
    chosen = [(p, rel, kind) for p, rel in files if (kind := manifest_kind(rel)) is not None]
    standalone = set()
    for p, _, _ in chosen:
        try:
            standalone.add(p.resolve())
        except (OSError, RuntimeError, ValueError):
            continue
    parsed = [
        parse_manifest(p, rel, kind, root=root, standalone=standalone) for p, rel, kind in chosen
    ]
    constraining = {c for m in parsed for c in m.constraints if c != m.path}
    return [m for m in parsed if not (m.kind == "requirements" and m.path in constraining)]
