"""Repository walking: which files a scan looks at, and why the others were left out.

In a git work tree the file list comes from git: tracked, untracked and gitignored files
(weights are routinely gitignored and are what a local loader opens; ``respect_gitignore``
leaves ignored ones out, each listed as skipped); elsewhere from the file system. A symlink
whose target lies in the scanned tree (or, in a Hugging Face cache, in its ``models--*``
folder) is scanned once, under the link's name; other links are not read and are findings
(high when a loader would open them). File kinds come from content (:mod:`mlsec.sniff`), every
file is opened once (head and tail together, through :func:`mlsec.safeopen.open_regular`), and
every file left out is recorded with a reason. A PATH that cannot be scanned at all raises
:class:`~mlsec.errors.MlsecError` (exit 2).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from mlsec.config import DEFAULT_EXCLUDED_DIRS, ScanOptions
from mlsec.errors import MlsecError
from mlsec.findings import Finding, ScanError, Skipped
from mlsec.globs import any_match
from mlsec.modelnames import loader_would_open
from mlsec.records import Slotted
from mlsec.rules import RuleSet
from mlsec.safeopen import NotRegularFile, open_regular
from mlsec.sniff import HEAD_SIZE, FileKind, parse_lfs_pointer, sniff

TAIL_SIZE = 22  # a zip's end-of-central-directory record without a comment


class Target(NamedTuple):
    """A regular file to analyze.

    ``path`` is what analyzers open (for a symlink scanned as its target: the link, so names
    still say what the file is); ``tail`` holds the file's last :data:`TAIL_SIZE` bytes, read
    by the walk in the same open as the head (empty for targets built elsewhere).
    """

    path: Path
    relpath: str
    size: int
    kind: FileKind
    tail: bytes = b""

    def open(self) -> os.PathLike[str]:  # pragma: no cover - convenience for analyzers
        return self.path


class _Candidate(NamedTuple):
    """A path the walk will add, once it knows which path stands for each file."""

    full: Path
    shown: str
    st: os.stat_result
    via_link: bool
    blob: bool  # a Hugging Face cache blob (scanned under its snapshot link's name)

    @property
    def ident(self) -> tuple[int, int]:
        return (self.st.st_dev, self.st.st_ino)


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


_HF_CACHE_PREFIXES = ("models--", "datasets--", "spaces--")
_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def special_kind(mode: int) -> str:
    """What a non-regular file is, in words ("a FIFO (named pipe)", "a character device")."""
    return next((what for test, what in _SPECIAL_KINDS if test(mode)), "not a regular file")


def hf_cache_folder(path: Path) -> Path | None:
    """The ``models--org--name`` (or ``datasets--``/``spaces--``) folder of a Hugging Face
    cache that ``path`` sits in under ``snapshots/``, found by walking up; else None."""
    for parent in path.parents:
        if parent.name == "snapshots":
            cache = parent.parent
            return cache if cache.name.startswith(_HF_CACHE_PREFIXES) else None
    return None


def _is_hf_blob(full: Path, rel: str) -> bool:
    if "blobs/" not in rel:  # the common case, without building Path objects
        return False
    parent = full.parent
    return parent.name == "blobs" and parent.parent.name.startswith(_HF_CACHE_PREFIXES)


class Walker:
    def __init__(self, options: ScanOptions, rules: RuleSet) -> None:
        self.options = options
        self.rules = rules
        self.root = options.root.resolve()
        self.result = WalkResult()
        self._pending: list[_Candidate] = []
        self._hf_scopes: dict[Path, Path | None] = {}

    # -- entry point -----------------------------------------------------------------
    def walk(self) -> WalkResult:
        path = self.options.path
        _check_scannable(path)
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
        self._settle()
        self.result.targets.sort(key=lambda t: t.relpath)
        return self.result

    # -- sources of candidate paths ---------------------------------------------------
    def _git_files(self) -> list[str] | None:
        """The files of the work tree under the root (tracked, untracked and, unless
        ``respect_gitignore``, ignored), relative to the root; None if there is no git."""
        if not (self.root / ".git").exists() and not _inside_git(self.root):
            return None
        try:
            import git  # gitpython; imported lazily: it spawns git and is slow to import
        except ImportError:
            return None
        try:
            runner = git.Git(str(self.root))
            out = runner.ls_files(
                "--cached",
                "--others",
                "--exclude-standard",
                "-z",
                "--",
                ".",
                stdout_as_string=False,
            )
            # Ignored files are what a local loader opens too (checkpoints/ is usually
            # gitignored). --directory lists an ignored folder once instead of every file in
            # it, so a gitignored node_modules/ or .venv/ costs one line.
            ignored = runner.ls_files(
                "--others",
                "--ignored",
                "--exclude-standard",
                "--directory",
                "--no-empty-directory",
                "-z",
                "--",
                ".",
                stdout_as_string=False,
            )
        except git.GitCommandError:
            return None
        assert isinstance(out, bytes) and isinstance(ignored, bytes)
        rels = {os.fsdecode(p) for p in out.split(b"\0") if p}
        for entry in sorted(os.fsdecode(p) for p in ignored.split(b"\0") if p):
            self._ignored_entry(entry, rels)
        kept: list[str] = []
        reported: set[str] = set()
        for rel in sorted(rels):
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

    def _ignored_entry(self, entry: str, rels: set[str]) -> None:
        """Add one gitignored file or folder to ``rels`` (or list it as skipped)."""
        folder = entry.endswith("/")
        rel = entry.rstrip("/")
        shown = display_name(rel) + ("/" if folder else "")
        if self.options.respect_gitignore:
            self._skip(shown, "ignored by .gitignore (--respect-gitignore)")
            return
        if not folder:
            rels.add(rel)
            return
        parts = rel.split("/")
        try:
            real_folder = stat.S_ISDIR((self.root / rel).lstat().st_mode)
        except OSError:
            real_folder = False
        if not real_folder:  # a link git listed as a folder: judged like any other link
            rels.add(rel)
            return
        if any(p in DEFAULT_EXCLUDED_DIRS for p in parts) or _is_venv(self.root / rel):
            self._skip(shown, "excluded folder (default)")
            return
        if self.options.exclude and any_match(self.options.exclude, rel):
            self._skip(shown, "excluded by configuration")
            return
        rels.update(self._fs_files(self.root / rel, rel + "/"))

    def _fs_files(self, directory: Path, prefix: str) -> Iterator[str]:
        # An explicit stack, not recursion: a hostile tree can nest deeper than Python's
        # recursion limit.
        stack = [(directory, prefix)]
        while stack:
            folder, base = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                self._unreadable(base.rstrip("/") or ".", f"cannot list directory: {exc.strerror}")
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
        rel = rel.rstrip("/")  # git lists a nested repository as "path/"
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
            self._unreadable(shown, f"cannot stat: {exc.strerror}")
            return
        if stat.S_ISLNK(st.st_mode):
            self._symlink(full, shown)
            return
        if stat.S_ISDIR(st.st_mode):
            # A submodule or a nested clone (a model repository cloned into the tree): git
            # lists it as one entry, but its files are what a loader opens, so walk it.
            if _is_venv(full):
                self._skip(shown + "/", "excluded folder (default)")
                return
            for inner in self._fs_files(full, rel + "/"):
                self._consider(inner)
            return
        if not stat.S_ISREG(st.st_mode):
            self._special(shown, st.st_mode, shown)
            return
        self._pending.append(_Candidate(full, shown, st, False, _is_hf_blob(full, rel)))

    def _hf_scope(self, full: Path) -> Path | None:
        """The resolved cache folder a snapshot link may point into (memoised per folder)."""
        folder = full.parent
        if folder not in self._hf_scopes:
            cache = hf_cache_folder(full)
            self._hf_scopes[folder] = cache.resolve() if cache is not None else None
        return self._hf_scopes[folder]

    def _symlink(self, full: Path, shown: str) -> None:
        try:
            resolved = full.resolve(strict=True)
            st = resolved.stat()
        except (OSError, RuntimeError) as exc:
            loop = isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP
            self._skip(shown, "broken or looping symlink")
            what = "loops (it resolves to itself)" if loop else "is broken (its target is missing)"
            self.result.findings.append(
                self.rules.finding(
                    "MLS902",
                    shown,
                    f"Symlink {what}; it was not followed",
                    key="loop" if loop else "broken",
                )
            )
            return
        target = display_name(str(resolved))
        scope = self._hf_scope(full)
        inside = resolved.is_relative_to(self.root) or (
            scope is not None and resolved.is_relative_to(scope)
        )
        if stat.S_ISDIR(st.st_mode):
            if resolved.is_relative_to(self.root):
                inner = display_name(resolved.relative_to(self.root).as_posix())
                self._skip(shown, f"symlink to folder {inner} (scanned at its own path)")
            else:
                self._escape(shown, target, "links to folders out of the tree are not followed")
            return
        if not inside and not self.options.follow_symlinks:
            self._escape(shown, target, "it was not followed")
            return
        if not stat.S_ISREG(st.st_mode):
            self._special(shown, st.st_mode, f"the target of symlink {shown}")
            return
        self._pending.append(_Candidate(full, shown, st, True, False))

    def _escape(self, shown: str, target: str, why: str) -> None:
        self._skip(shown, "symlink out of the scanned tree (not followed)")
        details = {"target": target}
        if loader_would_open(shown):
            finding = self.rules.finding(
                "MLS905",
                shown,
                f"Model file not scanned: symlink out of the tree (to {target}); {why}"
                " (--follow-symlinks reads it)",
                key="escape",
                details=details,
            )
        else:
            finding = self.rules.finding(
                "MLS902",
                shown,
                f"Symlink points outside the scanned tree ({target}); {why}",
                key="escape",
                details=details,
            )
        self.result.findings.append(finding)

    def _special(self, shown: str, mode: int, what: str) -> None:
        kind = special_kind(mode)
        self._skip(shown, f"not a regular file ({kind}; not read)")
        self.result.findings.append(
            self.rules.finding(
                "MLS906",
                shown,
                f"{what[:1].upper()}{what[1:]} is {kind}; it was not read",
                key=kind,
            )
        )

    def _settle(self) -> None:
        """Add each file once: at its own path, or (for Hugging Face cache blobs and targets
        outside the listing) under the first link to it."""
        links = sorted((c for c in self._pending if c.via_link), key=lambda c: c.shown)
        if not links:  # the common case: every candidate is a file at its own path
            for cand in self._pending:
                self._add(cand.full, cand.shown, cand.st.st_size)
            self._pending = []
            return
        own = {c.ident: c.shown for c in self._pending if not c.via_link and not c.blob}
        claimed: dict[tuple[int, int], str] = {}
        for cand in links:
            first = own.get(cand.ident) or claimed.get(cand.ident)
            if first is not None:
                self._skip(cand.shown, f"symlink to {first} (scanned at its own path)")
                continue
            claimed[cand.ident] = cand.shown
            self._add(cand.full, cand.shown, cand.st.st_size)
        for cand in self._pending:
            if cand.via_link:
                continue
            if cand.blob and cand.ident in claimed:
                self._skip(
                    cand.shown, f"Hugging Face cache blob (scanned as {claimed[cand.ident]})"
                )
                continue
            self._add(cand.full, cand.shown, cand.st.st_size)
        self._pending = []

    def _single_file(self, path: Path) -> None:
        shown = display_name(path.name)
        st = path.stat()  # _check_scannable made sure this works and is a regular file
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
            head, tail, kind = read_and_sniff(full)
        except OSError as exc:
            self._unreadable(shown, f"cannot read: {exc.strerror or exc}")
            return
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
        self.result.targets.append(Target(full, shown, size, kind, tail))

    # -- reporting ------------------------------------------------------------------------
    def _skip(self, shown: str, reason: str) -> None:
        self.result.skipped.append(Skipped(shown, reason))

    def _error(self, shown: str, message: str) -> None:
        self.result.errors.append(ScanError(shown, message, analyzer="walk"))

    def _unreadable(self, shown: str, message: str) -> None:
        """An error entry and a finding: what could not be read was not checked."""
        self._error(shown, message)
        self.result.findings.append(
            self.rules.finding(
                "MLS901", shown, f"Not scanned: {message}", key=message.split(":", 1)[0]
            )
        )

    def _limit(self, shown: str, message: str) -> None:
        self._skip(shown, message)
        self.result.findings.append(
            self.rules.finding("MLS904", shown, f"Not scanned: {message}", key="walk-limit")
        )


def read_and_sniff(path: Path) -> tuple[bytes, bytes, FileKind]:
    """The first :data:`HEAD_SIZE` and last :data:`TAIL_SIZE` bytes and the file's kind, in
    one open of a regular file: a FIFO or device swapped in after the listing is refused, not
    read, and a pickle probe that needs more than the head reads it from the same descriptor.

    The same checks as :func:`mlsec.safeopen.open_regular` (non-blocking open, ``fstat`` of
    the descriptor), on a bare descriptor: the walk does this for every file in the tree and a
    buffered file object costs a third of the walk's time.
    """
    fd = os.open(path, _READ_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(f"not a regular file ({special_kind(st.st_mode)})")
        size = st.st_size
        if size <= HEAD_SIZE + TAIL_SIZE:
            data = os.read(fd, HEAD_SIZE + TAIL_SIZE)
            head, tail = data[:HEAD_SIZE], data[-TAIL_SIZE:]
        else:
            head, tail = os.read(fd, HEAD_SIZE), os.pread(fd, TAIL_SIZE, size - TAIL_SIZE)

        def more(n: int) -> bytes:
            try:
                return os.pread(fd, n, 0)
            except OSError:
                return b""

        return head, tail, sniff(head, path.name, size, more)
    finally:
        os.close(fd)


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def _check_scannable(path: Path) -> None:
    """Refuse a PATH that cannot be scanned at all (exit 2), rather than pass on nothing."""
    try:
        st = path.stat()
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
            raise MlsecError(
                f"cannot scan {path}: it is a symlink loop", hint="point mlsec at a real file"
            ) from None
        reason = getattr(exc, "strerror", None) or str(exc)
        raise MlsecError(f"cannot scan {path}: {reason}") from None
    if stat.S_ISDIR(st.st_mode):
        try:
            with os.scandir(path) as entries:
                next(entries, None)
        except OSError as exc:
            raise MlsecError(
                f"cannot scan {path}: the folder cannot be listed ({exc.strerror})",
                hint="check its permissions",
            ) from None
        return
    if not stat.S_ISREG(st.st_mode):
        raise MlsecError(
            f"cannot scan {path}: it is {special_kind(st.st_mode)}, not a file or folder",
            hint="pass a directory or a regular file",
        )
    try:
        with open_regular(path):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise MlsecError(f"cannot scan {path}: {reason}", hint="check its permissions") from None


def _inside_git(path: Path) -> bool:
    return any((parent / ".git").exists() for parent in (path, *path.parents))


def walk(options: ScanOptions, rules: RuleSet) -> WalkResult:
    """List the files a scan of ``options.path`` covers."""
    return Walker(options, rules).walk()
