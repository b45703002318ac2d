"""File hashing shared by the signature verifier and the AIBOM, with an optional cache.

SHA-256 in chunks read into one reused buffer. :class:`PendingHashes` hashes big batches in
forked worker processes (:mod:`mlsec.forks`), one per core, while the caller does its other
work: processes, not threads, because the caller's Python work holds the GIL that a hashing
thread needs twice a chunk (a cold BOM scan of 4 GiB in 8 files took 1.69 s with threads and
1.62 s with processes, against 1.48 s for ``openssl dgst -sha256`` on both cores: ``python
benchmarks/bench_scale.py --scale 1 --cases weights-hash``). The cache keys on path, size,
mtime, ctime, inode and device, so a second scan of unchanged weights does not read them
again, and a byte changed with the mtime put back (which still moves the ctime) is hashed
anew. Files are read through :func:`mlsec.safeopen.open_regular`: a FIFO or a link to
``/dev/zero`` swapped in after the walk is refused, never read forever.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlsec.forks import ForkedSlices, balanced
from mlsec.safeopen import open_regular, write_private

# 1 MiB: the buffer stays in the core's cache between the copy from the page cache and the
# hash (4 MiB costs 5% more CPU, measured).
CHUNK = 1024 * 1024
# From this many bytes to read, a batch is hashed in workers (a fork costs about a
# millisecond, 1.5 MB of hashing); smaller ones are hashed by the caller when it takes them.
FORK_BYTES = 16 * 1024**2


_FADVISE = hasattr(os, "posix_fadvise")  # not on macOS or Windows


def sha256_file(path: Path) -> str:
    return sha256_file_keyed(path)[0]


def sha256_file_keyed(path: Path) -> tuple[str, str]:
    """The digest and the cache key of the file read, both from one descriptor (the key is
    taken before reading, so a change while hashing leaves a key that no longer matches)."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open_regular(path) as handle:
        key = _key_of(os.fstat(handle.fileno()))
        if _FADVISE:  # read from disk, not the page cache: the kernel reads ahead twice as far
            with contextlib.suppress(OSError):  # advice only
                os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while n := handle.readinto(buffer):  # type: ignore[attr-defined]
            digest.update(view[:n])
    return digest.hexdigest(), key


# Version 2: keys carry ctime and device (version 1 entries are dropped, not trusted).
_VERSION = 2
# Digests computed in this process, so two analyzers (signatures, AIBOM) hash a file once.
_MEMO: dict[tuple[str, str], str] = {}


def is_sha256_hex(text: str) -> bool:
    """A SHA-256 as :func:`sha256_file` writes it: 64 lowercase hex digits (what a cache
    holds that is not one is a miss, never a digest in a BOM)."""
    return len(text) == 64 and text.isascii() and all(c in "0123456789abcdef" for c in text)


def _key_of(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}"


def _stat_key(path: Path) -> str:
    return _key_of(path.stat())


class HashCache:
    """sha256 by (absolute path, size, mtime, ctime, inode, device), persisted as JSON; never
    trusted blindly:
    any change to the key re-hashes the file.

    Saving drops entries of files that are gone and keeps the ``max_entries`` most recently
    used, so the file does not grow with every checkout a machine ever scanned.
    """

    MAX_ENTRIES = 20_000

    def __init__(self, file: Path | None, *, max_entries: int = MAX_ENTRIES) -> None:
        self.file = file
        self.max_entries = max_entries
        self._entries: dict[str, list[str]] = {}
        self._dirty = False
        if file is not None:
            from mlsec import boundedjson

            try:
                # The user's own and writable by no one else, as every cache mlsec reads:
                # the entries name the identities they are for, so whoever could write the
                # file could give unchanged weights another digest in the BOM.
                data = boundedjson.read_file(
                    file, max_bytes=256 * 1024 * 1024, max_depth=4, private=True
                )
                if not isinstance(data, dict) or data.get("version") != _VERSION:
                    data = {}
                entries = data.get("entries")
                if isinstance(entries, dict):
                    self._entries = {
                        k: v
                        for k, v in entries.items()
                        if isinstance(v, list)
                        and len(v) == 2
                        and all(isinstance(x, str) for x in v)
                        and is_sha256_hex(v[1])
                    }
            except (OSError, ValueError):  # missing, unreadable or damaged: start afresh
                self._entries = {}

    def get(self, path: Path) -> str | None:
        entry = self._entries.get(str(path))
        if entry is None:
            return None
        try:
            if entry[0] != _stat_key(path):
                return None
        except OSError:
            return None
        # Most recently used last: the order save() trims by. A run that only reads the cache
        # does not rewrite it for that.
        self._entries[str(path)] = self._entries.pop(str(path))
        return entry[1]

    def put(self, path: Path, digest: str, key: str | None = None) -> None:
        """Remember ``digest``; ``key`` is the stat key of the content hashed (else now's)."""
        if key is None:
            try:
                key = _stat_key(path)
            except OSError:
                return
        self._entries.pop(str(path), None)
        self._entries[str(path)] = [key, digest]
        self._dirty = True

    def _prune(self) -> None:
        kept = {k: v for k, v in self._entries.items() if os.path.exists(k)}
        if len(kept) > self.max_entries:
            kept = dict(list(kept.items())[-self.max_entries :])
        self._entries = kept

    def save(self) -> None:
        if self.file is None or not self._dirty:
            return
        self._prune()
        try:
            write_private(self.file, json.dumps({"version": _VERSION, "entries": self._entries}))
            self._dirty = False
        except OSError:
            pass  # a cache that cannot be written only costs time


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may run on
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _digest_and_key(path: str) -> tuple[str, str] | None:
    """:func:`sha256_file_keyed` as plain data (what a worker sends back); None when the file
    is unreadable, gone, or no longer a regular file."""
    try:
        return sha256_file_keyed(Path(path))
    except OSError:
        return None


class PendingHashes:
    """Files being hashed while the caller does its other work: big batches in forked
    workers (one per core), small ones in this process when :meth:`result` is taken. The
    caller may :meth:`add` files it learns about, then takes :meth:`result`. Used as a
    context manager, leaving on an exception (Ctrl-C) kills the workers instead of hashing
    every remaining weight file first."""

    def __init__(
        self, paths: Iterable[Path], *, cache: HashCache | None = None, workers: int | None = None
    ) -> None:
        self.cache = cache
        self._workers = workers
        self._digests: dict[Path, str] = {}
        self._seen: set[Path] = set()
        self._here: list[Path] = []  # hashed by result(), in this process
        self._forked: list[tuple[list[list[Path]], ForkedSlices[str]]] = []
        self.add(paths)

    def add(self, paths: Iterable[Path]) -> None:
        """Hash these files too (those already added, cached or memoised are not read)."""
        todo: list[tuple[int, Path]] = []
        for path in paths:
            if path in self._seen:
                continue
            self._seen.add(path)
            cached = self.cache.get(path) if self.cache else None
            size = 0
            if not cached:
                try:
                    st = path.stat()
                    size = st.st_size
                    cached = _MEMO.get((str(path), _key_of(st)))
                except OSError:
                    cached = None
            if cached:
                self._digests[path] = cached
            else:
                todo.append((size, path))
        if sum(size for size, _ in todo) < FORK_BYTES:
            self._here.extend(path for _, path in todo)
            return
        # Shares of about equal size, so the workers finish together instead of one hashing
        # the last big shard alone while the others are idle.
        pieces = balanced([size for size, _ in todo], self._workers or _cores())
        shares = [[todo[i][1] for i in piece] for piece in pieces]
        try:
            self._forked.append(
                (shares, ForkedSlices(_digest_and_key, [list(map(str, s)) for s in shares]))
            )
        except BaseException:
            self.cancel()
            raise

    @property
    def running(self) -> bool:
        """Whether workers are reading files (a cache or memo can answer for every one)."""
        return bool(self._forked)

    def result(self) -> Mapping[Path, str]:
        """sha256 of each file; files that cannot be read are left out."""
        try:
            for path in self._here:  # while the workers hash theirs
                self._record(path, _digest_and_key(str(path)))
            self._here = []
            for shares, forked in self._forked:
                for share, part in zip(shares, forked.results(), strict=True):
                    for path, got in zip(share, part, strict=True):
                        self._record(path, got)
            self._forked = []
        except BaseException:
            self.cancel()
            raise
        if self.cache:
            self.cache.save()
        return self._digests

    def _record(self, path: Path, got: Any) -> None:
        if not (isinstance(got, tuple) and len(got) == 2):
            return  # unreadable (None)
        digest, key = got
        self._digests[path] = digest
        _MEMO[(str(path), key)] = digest
        if self.cache:
            self.cache.put(path, digest, key)

    def cancel(self) -> None:
        """Kill the workers and drop the files not hashed yet."""
        for _, forked in self._forked:
            forked.stop()
        self._forked = []
        self._here = []

    def __enter__(self) -> PendingHashes:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is not None:
            self.cancel()


def hash_files(
    paths: Iterable[Path], *, cache: HashCache | None = None, workers: int | None = None
) -> Mapping[Path, str]:
    """sha256 of each file, hashed in parallel; files that cannot be read are left out."""
    return PendingHashes(paths, cache=cache, workers=workers).result()
