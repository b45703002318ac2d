"""Repository walking: which files a scan looks at, and why the others were left out.

In a git work tree the file list comes from git (tracked plus untracked-not-ignored, so
``.gitignore`` is honoured); elsewhere from the file system. Symlinks are never followed out
of the root, file kinds come from content (:mod:`mlsec.sniff`), and every file left out is
recorded with a reason.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from mlsec.config import DEFAULT_EXCLUDED_DIRS, ScanOptions
from mlsec.findings import Finding, ScanError, Skipped
from mlsec.globs import any_match
from mlsec.records import Slotted
from mlsec.rules import RuleSet
from mlsec.sniff import HEAD_SIZE, FileKind, head_reader, parse_lfs_pointer, sniff


class Target(NamedTuple):
    """A regular file to analyze."""

    path: Path
    relpath: str
    size: int
    kind: FileKind

    def open(self) -> os.PathLike[str]:  # pragma: no cover - convenience for analyzers
        return self.path


class WalkResult(Slotted):
    """What the walk found (the walker fills it in)."""

    __slots__ = ("errors", "findings", "git", "skipped", "targets")

    def __init__(self) -> None:
        self.targets: list[Target] = []
        self.skipped: list[Skipped] = []
        self.findings: list[Finding] = []
        self.errors: list[ScanError] = []
        self.git = False  # the file list came from git


def display_name(name: str) -> str:
    """A printable form of a file name: undecodable bytes become ``\\xNN`` escapes."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


def _is_venv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file()


class Walker:
    def __init__(self, options: ScanOptions, rules: RuleSet) -> None:
        self.options = options
        self.rules = rules
        self.root = options.root.resolve()
        self.result = WalkResult()

    # -- entry point -----------------------------------------------------------------
    def walk(self) -> WalkResult:
        path = self.options.path
        if not path.is_dir():
            self._single_file(path)
            return self.result
        listed = self._git_files() if self.options.use_git else None
        if listed is not None:
            self.result.git = True
            for rel in listed:
                self._consider(rel)
        else:
            for rel in self._fs_files(self.root, ""):
                self._consider(rel)
        self.result.targets.sort(key=lambda t: t.relpath)
        return self.result

    # -- sources of candidate paths ---------------------------------------------------
    def _git_files(self) -> list[str] | None:
        """Tracked and untracked-not-ignored files relative to the root, or None if no git."""
        if not (self.root / ".git").exists() and not _inside_git(self.root):
            return None
        try:
            import git  # gitpython; imported lazily: it spawns git and is slow to import
        except ImportError:
            return None
        try:
            out = git.Git(str(self.root)).ls_files(
                "--cached",
                "--others",
                "--exclude-standard",
                "-z",
                "--",
                ".",
                stdout_as_string=False,
            )
        except git.GitCommandError:
            return None
        assert isinstance(out, bytes)
        rels = sorted({os.fsdecode(p) for p in out.split(b"\0") if p})
        kept: list[str] = []
        reported: set[str] = set()
        for rel in rels:
            parts = rel.split("/")
            cut = next((i for i, p in enumerate(parts[:-1]) if p in DEFAULT_EXCLUDED_DIRS), None)
            if cut is None:
                kept.append(rel)
                continue
            folder = "/".join(parts[: cut + 1]) + "/"
            if folder not in reported:
                reported.add(folder)
                self._skip(display_name(folder), "excluded folder (default)")
        return kept

    def _fs_files(self, directory: Path, prefix: str) -> Iterator[str]:
        # An explicit stack, not recursion: a hostile tree can nest deeper than Python's
        # recursion limit.
        stack = [(directory, prefix)]
        while stack:
            folder, base = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                self._error(base.rstrip("/") or ".", f"cannot list directory: {exc.strerror}")
                continue
            subfolders: list[tuple[Path, str]] = []
            for entry in entries:
                rel = base + entry.name
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                if not is_dir:
                    yield rel
                elif entry.name in DEFAULT_EXCLUDED_DIRS or _is_venv(Path(entry.path)):
                    self._skip(display_name(rel) + "/", "excluded folder (default)")
                elif self.options.exclude and any_match(self.options.exclude, rel):
                    self._skip(display_name(rel) + "/", "excluded by configuration")
                else:
                    subfolders.append((Path(entry.path), rel + "/"))
            stack.extend(reversed(subfolders))

    # -- per path -----------------------------------------------------------------------
    def _consider(self, rel: str) -> None:
        shown = display_name(rel)
        if self.options.exclude and any_match(self.options.exclude, rel):
            self._skip(shown, "excluded by configuration")
            return
        if self.options.include and not any_match(self.options.include, rel):
            self._skip(shown, "not matched by include patterns")
            return
        full = self.root / rel
        try:
            st = full.lstat()
        except FileNotFoundError:
            self._skip(shown, "tracked by git but missing from the work tree")
            return
        except OSError as exc:
            self._error(shown, f"cannot stat: {exc.strerror}")
            return
        if stat.S_ISLNK(st.st_mode):
            self._symlink(full, shown)
            return
        if stat.S_ISDIR(st.st_mode):
            self._skip(shown + "/", "git submodule or nested repository (not scanned)")
            return
        if not stat.S_ISREG(st.st_mode):
            self._skip(shown, "not a regular file")
            return
        self._add(full, shown, st.st_size)

    def _symlink(self, full: Path, shown: str) -> None:
        try:
            resolved = full.resolve(strict=True)
        except (OSError, RuntimeError):
            self._skip(shown, "broken or looping symlink")
            self.result.findings.append(
                self.rules.finding(
                    "MLS902",
                    shown,
                    "Symlink is broken or loops; it was not followed",
                    key="broken",
                )
            )
            return
        if not resolved.is_relative_to(self.root):
            self._skip(shown, "symlink out of the scanned tree (not followed)")
            self.result.findings.append(
                self.rules.finding(
                    "MLS902",
                    shown,
                    f"Symlink points outside the scanned tree ({display_name(str(resolved))});"
                    " it was not followed",
                    key="escape",
                    details={"target": display_name(str(resolved))},
                )
            )
            return
        inner = display_name(resolved.relative_to(self.root).as_posix())
        self._skip(shown, f"symlink to {inner} (scanned at its own path)")

    def _single_file(self, path: Path) -> None:
        shown = display_name(path.name)
        try:
            st = path.stat()
        except OSError as exc:
            self._error(shown, f"cannot read: {exc.strerror}")
            return
        if not stat.S_ISREG(st.st_mode):
            self._skip(shown, "not a regular file")
            return
        self._add(path, shown, st.st_size)

    def _add(self, full: Path, shown: str, size: int) -> None:
        limits = self.options.limits
        if len(self.result.targets) >= limits.max_files:
            self._limit(shown, f"more than {limits.max_files} files (limits.max-files)")
            return
        if size > limits.max_file_size:
            self._limit(
                shown, f"file is {size} bytes, over limits.max-file-size ({limits.max_file_size})"
            )
            return
        if size == 0:
            # Still a target: an empty file can matter (a file added to a signed model folder,
            # an empty model.sig); analyzers that read content do not accept FileKind.EMPTY.
            self.result.targets.append(Target(full, shown, 0, FileKind.EMPTY))
            return
        try:
            with open(full, "rb") as handle:
                head = handle.read(HEAD_SIZE)
        except OSError as exc:
            self._error(shown, f"cannot read: {exc.strerror}")
            self.result.findings.append(
                self.rules.finding(
                    "MLS901", shown, f"File could not be read ({exc.strerror}); it was not scanned"
                )
            )
            return
        kind = sniff(head, full.name, size, head_reader(full))
        if kind is FileKind.LFS_POINTER:
            pointer = parse_lfs_pointer(head)
            if pointer is not None:
                oid, lfs_size = pointer
                self.result.findings.append(
                    self.rules.finding(
                        "MLS903",
                        shown,
                        f"Git LFS pointer: the artifact (sha256:{oid}, {lfs_size} bytes) is not"
                        " checked out, so it was not scanned",
                        details={"oid": f"sha256:{oid}", "size": lfs_size},
                    )
                )
        self.result.targets.append(Target(path=full, relpath=shown, size=size, kind=kind))

    # -- reporting ------------------------------------------------------------------------
    def _skip(self, shown: str, reason: str) -> None:
        self.result.skipped.append(Skipped(shown, reason))

    def _error(self, shown: str, message: str) -> None:
        self.result.errors.append(ScanError(shown, message, analyzer="walk"))

    def _limit(self, shown: str, message: str) -> None:
        self._skip(shown, message)
        self.result.findings.append(
            self.rules.finding("MLS904", shown, f"Not scanned: {message}", key="walk-limit")
        )


def _inside_git(path: Path) -> bool:
    return any((parent / ".git").exists() for parent in (path, *path.parents))


def walk(options: ScanOptions, rules: RuleSet) -> WalkResult:
    """List the files a scan of ``options.path`` covers."""
    return Walker(options, rules).walk()
