"""Which of the walk's targets one scan analyses: ``--diff REF`` and ``--shard K/N``.

Both keep what an analysis needs together: every file of a folder signed by a ``model.sig``
(its signature covers the folder and its subfolders, signed ones too, so a change anywhere
re-checks all of it, from the outermost signed folder), a detached
bundle with its artifact, the dependency manifests of one folder (a lock file pins the ranges
beside it), and a requirements file with the ``-r``/``-c`` files it includes.
Paths here are repository-relative (``prefix`` is the scanned root's place in the repository).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from mlsec.errors import MlsecError
from mlsec.scan import repo_path
from mlsec.walk import Target, display_name

SIGNATURE_NAME = "model.sig"
BUNDLE_SUFFIXES = (".sigstore.json", ".sigstore")
_INCLUDE = re.compile(
    rb"^[ \t]*(?:-r|--requirement|-c|--constraint)(?:[ \t]*=[ \t]*|[ \t]+|(?=\S))(\S+)",
    re.MULTILINE,
)
_MAX_MANIFEST_READ = 1024**2


def _folder(path: str) -> str:
    return path.rpartition("/")[0]


def _ancestors(path: str) -> Iterable[str]:
    folder = _folder(path)
    while True:
        yield folder
        if not folder:
            return
        folder = _folder(folder)


def _signed_folders(paths: Iterable[str]) -> set[str]:
    return {_folder(p) for p in paths if p.rsplit("/", 1)[-1] == SIGNATURE_NAME}


def _signed_folder_of(path: str, signed: set[str]) -> str | None:
    """The outermost signed folder holding ``path``: a signature covers its subfolders, a
    signed one among them too, so an inner signed folder goes with the outer one."""
    outermost = None
    for folder in _ancestors(path):
        if folder in signed:
            outermost = folder
    return outermost


def _bundle_subject(path: str) -> str | None:
    for suffix in BUNDLE_SUFFIXES:
        if path.endswith(suffix) and len(path) > len(suffix):
            return path[: -len(suffix)]
    return None


def _includes(target: Target, path: str) -> set[str]:
    """The repository paths a requirements-style file includes with -r/-c (best effort)."""
    if not target.relpath.endswith((".txt", ".in")):
        return set()
    from mlsec.safeopen import open_regular

    try:
        with open_regular(target.path) as handle:
            text = handle.read(_MAX_MANIFEST_READ)
    except OSError:
        return set()
    found: set[str] = set()
    for match in _INCLUDE.finditer(text):
        name = os.fsdecode(match.group(1))
        joined = os.path.normpath(os.path.join(_folder(path), name)).replace(os.sep, "/")
        if not joined.startswith("../"):
            found.add(joined)
    return found


def changed_files(repo_root: Path, ref: str) -> frozenset[str]:
    """Files changed since ``ref`` in the work tree (renames as their new name), plus
    untracked files, relative to the repository root. Deleted files are not listed."""
    if not ref or ref.startswith("-") or "\0" in ref:
        # A revision that git would read as an option (`--output=FILE` writes a file).
        raise MlsecError(
            f"--diff {ref!r} is not a git revision",
            hint="give a commit, branch or tag, e.g. --diff origin/main",
        )
    try:
        import git  # gitpython, imported only for --diff
    except ImportError:  # pragma: no cover - a declared dependency
        raise MlsecError("--diff needs gitpython") from None
    try:
        repo = git.Repo(repo_root)
        diff_out = repo.git.diff("--name-status", "-M", "-z", ref, "--", stdout_as_string=False)
        untracked_out = repo.git.ls_files(
            "--others", "--exclude-standard", "-z", stdout_as_string=False
        )
    except git.InvalidGitRepositoryError:
        raise MlsecError(
            f"--diff needs a git repository, and {repo_root} is not one",
            hint="run mlsec scan --diff inside a git work tree",
        ) from None
    except git.GitCommandError as exc:
        detail = (exc.stderr or "").strip().splitlines()
        raise MlsecError(
            f"--diff {ref}: git cannot compare with it ({detail[-1] if detail else exc})",
            hint="give a commit, branch or tag that exists locally (fetch it first in CI)",
        ) from None
    assert isinstance(diff_out, bytes) and isinstance(untracked_out, bytes)
    # Names as the walk shows them (undecodable bytes escaped), so that they compare equal.
    changed: set[str] = set()
    fields = [display_name(os.fsdecode(f)) for f in diff_out.split(b"\0") if f]
    i = 0
    while i < len(fields):
        status = fields[i][:1]
        if status in ("R", "C"):  # status, old name, new name: the new name is what exists
            if i + 2 < len(fields):
                changed.add(fields[i + 2])
            i += 3
            continue
        if status != "D" and i + 1 < len(fields):
            changed.add(fields[i + 1])
        i += 2
    changed.update(display_name(os.fsdecode(p)) for p in untracked_out.split(b"\0") if p)
    return frozenset(changed)


def select_changed(
    targets: Sequence[Target], prefix: str, changed: frozenset[str]
) -> tuple[list[Target], set[str]]:
    """The targets a ``--diff`` scan analyses, and their repository paths."""
    paths = {t.relpath: repo_path(prefix, t.relpath) for t in targets}
    signed = _signed_folders(paths.values())
    keep = {p for p in paths.values() if p in changed}
    # A change in a signed folder (or to its signature) re-checks the whole folder.
    touched = {f for p in keep if (f := _signed_folder_of(p, signed)) is not None}
    keep.update(p for p in paths.values() if _signed_folder_of(p, signed) in touched)
    # A changed artifact re-checks its detached bundle, and a changed bundle its artifact.
    for p in list(paths.values()):
        subject = _bundle_subject(p)
        if subject is not None and (subject in keep or p in keep):
            keep.update((subject, p))
    # A changed manifest re-audits the manifests beside it (a lock file decides whether the
    # ranges of pyproject.toml or requirements.in are pinned)...
    from mlsec.deps import manifest_kind

    kinds = {p: manifest_kind(p) for p in paths.values()}
    folders = {_folder(p) for p in keep if kinds.get(p)}
    keep.update(p for p, kind in kinds.items() if kind and _folder(p) in folders)
    # ...and a changed include the manifests that include it (and theirs).
    manifests = {paths[t.relpath]: _includes(t, paths[t.relpath]) for t in targets}
    grew = True
    while grew:
        grew = False
        for manifest, included in manifests.items():
            if manifest not in keep and included & keep:
                keep.add(manifest)
                grew = True
    return [t for t in targets if paths[t.relpath] in keep], keep


# Every dependency manifest of the tree in one shard: the audit is one for the repository (a
# vulnerable pin is one finding at the first manifest pinning it, a package named by one
# manifest's project is first-party in all, -r/-c includes cross folders). A signed folder
# holding a manifest goes there whole; ``signed`` says so with a marker (NUL is in no path).
_DEPENDENCIES = "\0dependencies"
_WITH_DEPENDENCIES = "\0with-dependencies\0"


def shard_key(path: str, signed: set[str]) -> str:
    """What stays together in one shard: a signed folder (with the signed folders inside
    it), every dependency manifest (with the signed folders holding one), else the file's
    folder (a model with its detached bundle). ``signed`` is :func:`select_shard`'s."""
    folder = _signed_folder_of(path, signed)
    if folder is not None:
        return _DEPENDENCIES if _WITH_DEPENDENCIES + folder in signed else folder
    from mlsec.deps import manifest_kind

    return _DEPENDENCIES if manifest_kind(path) else _folder(path)


def shard_of(text: str) -> tuple[int, int] | None:
    """``"K/N"`` (1 <= K <= N, plain ASCII digits, at most 9 of them) as a pair, or None for
    anything else: int() also takes "1_0", full-width digits, signs and spaces, and a typo
    must not quietly be another shard. What ``--shard`` takes and ``mlsec merge`` reads back
    from a report's ``summary.shard``."""
    index, slash, count = text.partition("/")
    if not slash or not all(p.isascii() and p.isdigit() and len(p) <= 9 for p in (index, count)):
        return None
    pair = (int(index), int(count))
    return pair if 1 <= pair[0] <= pair[1] else None


def in_shard(key: str, shard: tuple[int, int]) -> bool:
    index, count = shard
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count == index - 1


def select_shard(
    targets: Sequence[Target], prefix: str, shard: tuple[int, int]
) -> tuple[list[Target], set[str]]:
    """The targets of shard ``K`` of ``N`` (1-based), and the signed folders of the tree
    (what :func:`shard_key` takes)."""
    from mlsec.deps import manifest_kind

    paths = {t.relpath: repo_path(prefix, t.relpath) for t in targets}
    signed = _signed_folders(paths.values())
    holding = {_signed_folder_of(p, signed) for p in paths.values() if manifest_kind(p)}
    signed |= {_WITH_DEPENDENCIES + f for f in holding if f is not None}
    kept = [t for t in targets if in_shard(shard_key(paths[t.relpath], signed), shard)]
    return kept, signed
