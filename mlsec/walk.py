"""Repository walking: which files a scan looks at, and why the others were left out.

In a git work tree the file list comes from git: tracked, untracked and gitignored files
(weights are routinely gitignored and are what a local loader opens; ``respect_gitignore``
leaves ignored ones out, each listed as skipped); elsewhere from the file system. A symlink
whose target lies in the scanned tree (or, in a Hugging Face cache, in its ``models--*``
folder) is scanned once, under the link's name; other links are not read and are findings
(high when a loader would open them). File kinds come from content
(:mod:`mlsec.models.sniff`), every file is opened once (head and tail together, with
:func:`mlsec.safeopen.open_regular`'s checks: :func:`read_and_sniff`), and every file left
out is recorded with a reason. A PATH that cannot be scanned at all raises
:class:`~mlsec.errors.MlsecError` (exit 2).

Plain regular files are read and sniffed in one pass (:func:`probe_file`), split over the
machine's cores from :data:`PARALLEL_PROBE_FILES` files on (:func:`mlsec.forks.fork_map`);
whatever is not a plain regular file goes to a slow path that reports each case.
"""

from __future__ import annotations

import errno
import operator
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from mlsec.config import DEFAULT_EXCLUDED_DIRS, ScanOptions
from mlsec.errors import MlsecError
from mlsec.findings import Finding, ScanError, Skipped
from mlsec.globs import any_match
from mlsec.modelnames import loader_would_open
from mlsec.models.sniff import HEAD_SIZE, FileKind, parse_lfs_pointer, sniff
from mlsec.records import Slotted
from mlsec.rules import RuleSet
from mlsec.safeopen import NotRegularFile, open_regular

TAIL_SIZE = 22  # a zip's end-of-central-directory record without a comment


class Target(NamedTuple):
    """A regular file to analyze.

    ``path`` is what analyzers open (for a symlink scanned as its target: the link, so names
    still say what the file is); ``tail`` holds the file's last :data:`TAIL_SIZE` bytes, read
    by the walk in the same open as the head (empty for targets built elsewhere).
    """

    # The walk stores a plain string: a pathlib object per file costs ~3 us to build on
    # Python 3.11, a tenth of the walk's time at 100,000 files, and most files are looked at
    # by no analyzer (`python benchmarks/bench_scale.py --cases source-files`).
    file: str | os.PathLike[str]
    relpath: str
    size: int
    kind: FileKind
    tail: bytes = b""

    @property
    def path(self) -> Path:
        return Path(self.file)


class _Candidate(NamedTuple):
    """A path the walk will add, once it knows which path stands for each file."""

    full: str
    shown: str
    size: int
    ident: tuple[int, int]  # (device, inode): which path stands for each file
    via_link: bool
    blob: bool  # a Hugging Face cache blob (scanned under its snapshot link's name)
    read: _Read | None = None  # what the probe phase already read of it


# What :func:`probe_file` read of a plain regular file: (size, device, inode, the kind's
# value, tail, a Git LFS pointer's (oid, size) or None). Plain data, as it comes back from
# the walk's worker processes.
_Read = tuple[int, int, int, str, bytes, "tuple[str, int] | None"]


def probe_file(full: str, max_size: int) -> _Read | None:
    """Stat, read and sniff one listed path, if it is a plain regular file of at most
    ``max_size`` bytes that can be read; None for anything else (a link, a folder, a special
    or missing or unreadable file, a file over the limit), which the walk then looks at again
    on its slow path, where each case is reported. Pure: it runs in worker processes."""
    try:
        st = os.lstat(full)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size > max_size:
        return None
    if st.st_size == 0:
        return (0, st.st_dev, st.st_ino, _VALUES[FileKind.EMPTY], b"", None)
    try:
        head, tail, kind = read_and_sniff(full)
    except OSError:
        return None
    lfs = parse_lfs_pointer(head) if kind is FileKind.LFS_POINTER else None
    return (st.st_size, st.st_dev, st.st_ino, _VALUES[kind], tail, lfs)


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


def _fsdecode(listing: bytes) -> str:
    """``os.fsdecode`` of a whole NUL-separated listing at once (NUL is one byte in every
    file system encoding, so decoding first and splitting after gives the same names)."""
    return listing.decode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())


# A path with a default-excluded folder in it (in a listing joined and led by NULs; a
# leading character class, not "^|", lets the regex engine skip ahead: 43 ms -> 15 ms on
# 100,000 paths).
_IN_EXCLUDED_DIR = re.compile(
    "[/\0](?:" + "|".join(re.escape(d) for d in DEFAULT_EXCLUDED_DIRS) + ")/"
)


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


def _is_hf_blob(full: str, rel: str) -> bool:
    if "blobs/" not in rel:  # the common case, without building Path objects
        return False
    parent = Path(full).parent
    return parent.name == "blobs" and parent.parent.name.startswith(_HF_CACHE_PREFIXES)


_RELPATH = operator.attrgetter("relpath")


class Walker:
    def __init__(self, options: ScanOptions, rules: RuleSet) -> None:
        self.options = options
        self.rules = rules
        self.root = options.root.resolve()
        self.result = WalkResult()
        self._pending: list[_Candidate] = []  # files _settle adds (see _consider_all)
        self._idents: list[tuple[int, int]] = []  # (device, inode) of each target, in order
        self._hf_scopes: dict[Path, Path | None] = {}

    # -- entry point -----------------------------------------------------------------
    def walk(self) -> WalkResult:
        path = self.options.path
        _check_scannable(path)
        if not path.is_dir():
            self._single_file(path)
            return self.result
        if not (self.options.use_git and self._walk_git()):
            self._consider_all([r for r in self._fs_files(self.root, "") if self._selected(r)])
        self._settle()
        self.result.targets.sort(key=_RELPATH)
        return self.result

    # -- sources of candidate paths ---------------------------------------------------
    def _walk_git(self) -> bool:
        """Consider the files of the work tree under the root (tracked, untracked and, unless
        ``respect_gitignore``, ignored) as git lists them; False if there is no git.

        Git lists tracked files from its index in a few milliseconds and needs a walk of the
        folders for the others: the tracked files are read while it looks (at 100,000 files
        that hides ~60 ms of the two other listings)."""
        if not (self.root / ".git").exists() and not _inside_git(self.root):
            return False
        listing = _GitListing.start(self.root)
        if listing is None:
            return False
        try:
            tracked = listing.tracked()
            if tracked is None:
                return False  # not a work tree after all (a bare repository, a broken one)
            self.result.git = True
            reported: set[str] = set()
            self._consider_all(self._kept(tracked, reported))
            listed = listing.others()
            if listed is None:  # git failed half-way: the file system has the rest
                others = list(self._fs_files(self.root, ""))
            else:
                untracked, ignored = listed
                rels = dict.fromkeys(untracked)
                for entry in sorted(ignored):
                    self._ignored_entry(entry, rels)
                others = list(rels)
            if others:
                seen = set(tracked)
                others = sorted(rel for rel in others if rel not in seen)
                self._consider_all(self._kept(others, reported))
        finally:
            listing.close()
        return True

    def _kept(self, listed: list[str], reported: set[str]) -> list[str]:
        """The paths of a git listing outside default-excluded folders (each such folder listed
        as skipped once) and let in by the include and exclude patterns."""
        if _IN_EXCLUDED_DIR.search("\0" + "\0".join(listed)):  # else, the usual: one search
            kept: list[str] = []
            for rel in listed:
                parts = rel.split("/")
                cut = next(
                    (i for i, p in enumerate(parts[:-1]) if p in DEFAULT_EXCLUDED_DIRS), None
                )
                if cut is None:
                    kept.append(rel)
                    continue
                folder = "/".join(parts[: cut + 1]) + "/"
                if folder not in reported:
                    reported.add(folder)
                    self._skip(display_name(folder), "excluded folder (default)")
            listed = kept
        return [rel for rel in listed if self._selected(rel)]

    def _ignored_entry(self, entry: str, rels: dict[str, None]) -> None:
        """Add one gitignored file or folder to ``rels`` (or list it as skipped)."""
        folder = entry.endswith("/")
        rel = entry.rstrip("/")
        shown = display_name(rel) + ("/" if folder else "")
        if self.options.respect_gitignore:
            self._skip(shown, "ignored by .gitignore (--respect-gitignore)")
            return
        if not folder:
            rels[rel] = None
            return
        parts = rel.split("/")
        try:
            real_folder = stat.S_ISDIR((self.root / rel).lstat().st_mode)
        except OSError:
            real_folder = False
        if not real_folder:  # a link git listed as a folder: judged like any other link
            rels[rel] = None
            return
        if any(p in DEFAULT_EXCLUDED_DIRS for p in parts) or _is_venv(self.root / rel):
            self._skip(shown, "excluded folder (default)")
            return
        if self.options.exclude and any_match(self.options.exclude, rel):
            self._skip(shown, "excluded by configuration")
            return
        rels.update(dict.fromkeys(self._fs_files(self.root / rel, rel + "/")))

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
    def _selected(self, rel: str) -> bool:
        """Whether the configured include and exclude patterns let ``rel`` in (else it is
        listed as skipped)."""
        options = self.options
        if not options.exclude and not options.include:
            return True
        rel = rel.rstrip("/")
        if options.exclude and any_match(options.exclude, rel):
            self._skip(display_name(rel), "excluded by configuration")
            return False
        if options.include and not any_match(options.include, rel):
            self._skip(display_name(rel), "not matched by include patterns")
            return False
        return True

    def _consider_all(self, rels: list[str]) -> None:
        """Each listed path: plain regular files are read and sniffed by :func:`probe_all`
        (in worker processes when there are many), everything else on the slow path."""
        prefix = str(self.root) + os.sep
        fulls = [prefix + rel.rstrip("/") for rel in rels]  # git lists a nested repo as "path/"
        reads = probe_all(fulls, self.options.limits.max_file_size, self.options.jobs)
        # Plain files become targets here; links and Hugging Face blobs wait for _settle,
        # which needs to know every file first.
        for rel, full, read in zip(rels, fulls, reads, strict=True):
            if read is None:
                self._consider(rel)
                continue
            shown, ident = display_name(rel), (read[1], read[2])
            if "blobs/" in rel and _is_hf_blob(full, rel):
                self._pending.append(_Candidate(full, shown, read[0], ident, False, True, read))
            else:
                self._add(full, shown, read[0], ident, read)

    def _consider(self, rel: str) -> None:
        """The slow path: one path that is not a plain regular file (or could not be read),
        looked at case by case, each reported."""
        rel = rel.rstrip("/")  # git lists a nested repository as "path/"
        shown = display_name(rel)
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
            inner = [r for r in self._fs_files(full, rel + "/") if self._selected(r)]
            self._consider_all(inner)
            return
        if not stat.S_ISREG(st.st_mode):
            self._special(shown, st.st_mode, shown)
            return
        path = str(full)
        ident = (st.st_dev, st.st_ino)
        self._pending.append(
            _Candidate(path, shown, st.st_size, ident, False, _is_hf_blob(path, rel))
        )

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
        ident = (st.st_dev, st.st_ino)
        self._pending.append(_Candidate(str(full), shown, st.st_size, ident, True, False))

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
                self._add(cand.full, cand.shown, cand.size, cand.ident, cand.read)
            self._pending = []
            return
        own = {c.ident: c.shown for c in self._pending if not c.via_link and not c.blob}
        for ident, target in zip(self._idents, self.result.targets, strict=True):
            own.setdefault(ident, target.relpath)
        claimed: dict[tuple[int, int], str] = {}
        for cand in links:
            first = own.get(cand.ident) or claimed.get(cand.ident)
            if first is not None:
                self._skip(cand.shown, f"symlink to {first} (scanned at its own path)")
                continue
            claimed[cand.ident] = cand.shown
            self._add(cand.full, cand.shown, cand.size, cand.ident, cand.read)
        for cand in self._pending:
            if cand.via_link:
                continue
            if cand.blob and cand.ident in claimed:
                self._skip(
                    cand.shown, f"Hugging Face cache blob (scanned as {claimed[cand.ident]})"
                )
                continue
            self._add(cand.full, cand.shown, cand.size, cand.ident, cand.read)
        self._pending = []

    def _single_file(self, path: Path) -> None:
        shown = display_name(path.name)
        st = path.stat()  # _check_scannable made sure this works and is a regular file
        self._add(str(path), shown, st.st_size, (st.st_dev, st.st_ino))

    def _add(
        self, full: str, shown: str, size: int, ident: tuple[int, int], read: _Read | None = None
    ) -> None:
        """Add one file as a target (reading and sniffing it unless ``read`` already did),
        or list it as over a limit or unreadable."""
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
            self._idents.append(ident)
            return
        if read is not None:
            kind, tail, pointer = _KINDS[read[3]], read[4], read[5]
        else:
            try:
                head, tail, kind = read_and_sniff(full)
            except OSError as exc:
                self._unreadable(shown, f"cannot read: {exc.strerror or exc}")
                return
            pointer = parse_lfs_pointer(head) if kind is FileKind.LFS_POINTER else None
        if pointer is not None:
            self._lfs_pointer(shown, pointer)
        self.result.targets.append(Target(full, shown, size, kind, tail))
        self._idents.append(ident)

    def _lfs_pointer(self, shown: str, pointer: tuple[str, int]) -> None:
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


def read_and_sniff(path: str | os.PathLike[str]) -> tuple[bytes, bytes, FileKind]:
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

        return head, tail, sniff(head, os.path.basename(path), size, more)
    finally:
        os.close(fd)


# From this many listed files on, the walk reads them in worker processes too: a fork costs
# ~1.5 ms, reading and sniffing a file 5 us (source) to 40 us (a small pickle); measured with
# `python benchmarks/bench_scale.py --cases small-models,source-files`.
PARALLEL_PROBE_FILES = 256
_KINDS = {kind.value: kind for kind in FileKind}
_VALUES = {kind: kind.value for kind in FileKind}  # Enum's .value is a slow property


def probe_all(fulls: list[str], max_size: int, jobs: int) -> list[_Read | None]:
    """:func:`probe_file` of each path, in order; in ``jobs`` processes (0: the machine's)
    when there are enough of them to pay for it."""
    from mlsec.forks import fork_map
    from mlsec.pool import effective_jobs  # mlsec.pool imports this module

    workers = effective_jobs(jobs) if len(fulls) >= PARALLEL_PROBE_FILES else 1
    if workers < 2:
        return [probe_file(full, max_size) for full in fulls]
    # What the pickle probe imports, imported before the fork: once rather than in each
    # worker, and never in a child while another thread held an import lock at the fork.
    from mlsec.models.probe import prepare_probe

    prepare_probe()
    return fork_map(lambda full: probe_file(full, max_size), fulls, workers)


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


class _GitListing:
    """The three ``git ls-files`` of a work tree, started at once: tracked files (from the
    index), untracked files, and ignored ones (--directory lists an ignored folder once
    instead of every file in it, so a gitignored node_modules/ or .venv/ costs one line;
    ignored files are what a local loader opens too: checkpoints/ is usually gitignored).

    git is run directly, not through gitpython: importing gitpython alone costs ~45 ms, a
    tenth of a 1,000-file scan, for three commands (`python benchmarks/bench_scale.py --cases
    small-models`); provenance and --diff, which read the repository, use gitpython."""

    def __init__(self, processes: list[subprocess.Popen[bytes]]) -> None:
        self._processes = processes

    @classmethod
    def start(cls, root: Path) -> _GitListing | None:
        processes: list[subprocess.Popen[bytes]] = []
        listing = cls(processes)
        for options in (
            ("--cached",),
            ("--others", "--exclude-standard"),
            ("--others", "--ignored", "--exclude-standard", "--directory", "--no-empty-directory"),
        ):
            command = ["git", "-C", str(root), "ls-files", *options, "-z", "--", "."]
            try:
                processes.append(
                    subprocess.Popen(
                        command,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL,
                    )
                )
            except OSError:  # no git on this machine: the file system is walked instead
                listing.close()
                return None
        return listing

    def _read(self, index: int) -> list[str] | None:
        out, _ = self._processes[index].communicate()
        if self._processes[index].returncode != 0:
            return None
        return [p for p in _fsdecode(out).split("\0") if p]

    def tracked(self) -> list[str] | None:
        return self._read(0)

    def others(self) -> tuple[list[str], list[str]] | None:
        """The untracked and the ignored entries."""
        untracked, ignored = self._read(1), self._read(2)
        return None if untracked is None or ignored is None else (untracked, ignored)

    def close(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def _inside_git(path: Path) -> bool:
    return any((parent / ".git").exists() for parent in (path, *path.parents))


def walk(options: ScanOptions, rules: RuleSet) -> WalkResult:
    """List the files a scan of ``options.path`` covers."""
    return Walker(options, rules).walk()
