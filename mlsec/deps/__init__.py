"""Dependency manifests: which files they are, and parsing them into dependencies.

One module per source format (requirements files, pyproject.toml, lock files, setup.cfg,
conda environment files); :func:`parse_manifests` picks the parser from the file name. The
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

MAX_MANIFEST_BYTES = 16 * 1024 * 1024

_REQUIREMENTS_NAME = re.compile(r"(^|[-_.])(requirements|reqs|constraints)([-_.]|$)", re.I)
_REQUIREMENTS_DIRS = {"requirements", "reqs"}


def manifest_kind(relpath: str) -> str | None:
    """The manifest format of a file, from its name; None if it is not a manifest."""
    path = PurePosixPath(relpath)
    name = path.name
    lower = name.lower()
    if name == "pyproject.toml":
        return "pyproject"
    if name == "uv.lock":
        return "uv.lock"
    if name == "poetry.lock":
        return "poetry.lock"
    if name == "Pipfile.lock":
        return "Pipfile.lock"
    if name == "setup.cfg":
        return "setup.cfg"
    if re.fullmatch(r"pylock(\.[^.]+)?\.toml", name):
        return "pylock"
    if re.fullmatch(r"environment([-_.][^/]*)?\.ya?ml", lower):
        return "environment.yml"
    if path.suffix.lower() in (".txt", ".in"):
        stem = lower.rsplit(".", 1)[0]
        parent = path.parent.name.lower()
        if _REQUIREMENTS_NAME.search(stem) or parent in _REQUIREMENTS_DIRS:
            return "requirements"
    return None


def parse_manifest(
    path: Path, relpath: str, kind: str, *, root: Path, standalone: set[Path]
) -> ParsedManifest:
    """Parse one manifest; problems are recorded in the result, never raised."""
    from mlsec.deps.manifest import ParsedManifest
    from mlsec.deps.requirements import RequirementsParser

    parser = RequirementsParser(root, standalone=standalone)
    if kind == "requirements":
        return parser.parse(path, relpath)
    manifest = ParsedManifest(path=relpath, kind=kind)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        manifest.problems.append((None, f"cannot read: {exc.strerror}"))
        return manifest
    if len(data) > MAX_MANIFEST_BYTES:
        manifest.problems.append((None, f"larger than {MAX_MANIFEST_BYTES} bytes; not parsed"))
        return manifest
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        manifest.problems.append((None, f"not UTF-8 text: {exc}"))
        return manifest
    if kind == "pyproject":
        from mlsec.deps.pyproject import parse_pyproject

        return parse_pyproject(text, relpath)
    if kind == "setup.cfg":
        from mlsec.deps.setupcfg import parse_setup_cfg

        return parse_setup_cfg(text, relpath)
    if kind == "environment.yml":
        from mlsec.deps.conda import parse_environment_yml

        return parse_environment_yml(text, relpath, path=path, parser=parser)
    from mlsec.deps import locks

    parsers = {
        "uv.lock": locks.parse_uv_lock,
        "poetry.lock": locks.parse_poetry_lock,
        "Pipfile.lock": locks.parse_pipfile_lock,
        "pylock": locks.parse_pylock,
    }
    return parsers[kind](text, relpath)


def parse_manifests(files: Sequence[tuple[Path, str]], root: Path) -> list[ParsedManifest]:
    """Parse every manifest among ``files`` ((absolute path, relative path) pairs)."""
    chosen = [(p, rel, kind) for p, rel in files if (kind := manifest_kind(rel)) is not None]
    standalone = {p.resolve() for p, _, _ in chosen}
    return [
        parse_manifest(p, rel, kind, root=root, standalone=standalone) for p, rel, kind in chosen
    ]
