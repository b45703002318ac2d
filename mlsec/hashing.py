"""File hashing shared by the signature verifier and the AIBOM, with an optional cache.

SHA-256 in chunks read into one reused buffer (reads and hashlib's updates release the GIL,
so one thread per file up to the CPU count hashes on every core, and the caller can do its
other work meanwhile: :class:`PendingHashes`). The cache keys on path, size, mtime,
ctime, inode and device, so a second scan of unchanged weights does not read them again, and a
byte changed with the mtime put back (which still moves the ctime) is hashed anew. Files are
read through :func:`mlsec.safeopen.open_regular`: a FIFO or a link to ``/dev/zero`` swapped in
after the walk is refused, never read forever.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mlsec.safeopen import open_regular

# 1 MiB: the buffer stays in the core's cache between the copy from the page cache and the
# hash (4 MiB costs 5% more CPU, measured), and each chunk needs the GIL only twice.
CHUNK = 1024 * 1024
# While threads hash, the GIL changes hands at least this often (the default is 5 ms): a
# caller busy in Python meanwhile holds up each thread's next chunk by at most this long.
SWITCH_INTERVAL = 0.0005


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
            if _CANCELLED.is_set():  # Ctrl-C in the main thread: stop within one chunk
                raise _Cancelled(os.fspath(path))
            digest.update(view[:n])
    return digest.hexdigest(), key


class _Cancelled(OSError):
    """Hashing stopped because the scan was interrupted."""


_CANCELLED = threading.Event()
# Version 2: keys carry ctime and device (version 1 entries are dropped, not trusted).
_VERSION = 2
# Digests computed in this process, so two analyzers (signatures, AIBOM) hash a file once.
_MEMO: dict[tuple[str, str], str] = {}


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
                data = boundedjson.read_file(file, max_bytes=256 * 1024 * 1024, max_depth=4)
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
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"version": _VERSION, "entries": self._entries}), "utf-8")
            os.replace(tmp, self.file)
            self._dirty = False
        except OSError:
            pass  # a cache that cannot be written only costs time


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may run on
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _hash_one(path: Path) -> tuple[Path, str | None, str]:
    try:
        digest, key = sha256_file_keyed(path)
    except OSError:  # unreadable, gone, or no longer a regular file
        return path, None, ""
    _MEMO[(str(path), key)] = digest
    return path, digest, key


class PendingHashes:
    """Files being hashed in threads (one per file up to the CPU count): the caller does its
    other work meanwhile (hashlib and reads release the GIL), may :meth:`add` files it
    learns about, then takes :meth:`result`. Used as a context manager, leaving on an
    exception (Ctrl-C) stops the threads at their next chunk instead of hashing every
    remaining weight file first."""

    def __init__(
        self, paths: Iterable[Path], *, cache: HashCache | None = None, workers: int | None = None
    ) -> None:
        self.cache = cache
        self._workers = workers
        self._digests: dict[Path, str] = {}
        self._seen: set[Path] = set()
        self._pool: Any = None
        self._switch = 0.0
        self._running: list[Iterator[tuple[Path, str | None, str]]] = []
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
        if not todo:
            return
        # Largest first: the threads finish together instead of one hashing the last big
        # shard alone while the others are idle.
        todo.sort(key=lambda item: -item[0])
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor  # only when there is hashing

            # Threads start as files wait for them: one file, one thread.
            self._pool = ThreadPoolExecutor(max_workers=self._workers or _cores())
            self._switch = sys.getswitchinterval()
            sys.setswitchinterval(min(self._switch, SWITCH_INTERVAL))
        try:
            # Every file submitted now.
            self._running.append(self._pool.map(_hash_one, [path for _, path in todo]))
        except BaseException:
            self.cancel()
            raise

    @property
    def running(self) -> bool:
        """Whether files are being read (a cache or memo can answer for every one)."""
        return self._pool is not None

    def result(self) -> Mapping[Path, str]:
        """sha256 of each file; files that cannot be read are left out."""
        try:
            for batch in self._running:
                for path, digest, key in batch:
                    if digest is not None:
                        self._digests[path] = digest
                        if self.cache:
                            self.cache.put(path, digest, key)
            self._running = []
        except BaseException:
            self.cancel()
            raise
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
            sys.setswitchinterval(self._switch)
        if self.cache:
            self.cache.save()
        return self._digests

    def cancel(self) -> None:
        """Stop the threads within one chunk and drop the files not started."""
        if self._pool is None:
            return
        _CANCELLED.set()
        try:
            self._pool.shutdown(wait=True, cancel_futures=True)
        finally:
            _CANCELLED.clear()
            self._pool = None
            sys.setswitchinterval(self._switch)

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
