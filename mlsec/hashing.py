"""File hashing shared by the signature verifier and the AIBOM, with an optional cache.

SHA-256 in large chunks read into one reused buffer (hashlib releases the GIL on big updates,
so a thread pool hashes several files on both cores). The cache keys on path, size, mtime and
inode, so a second scan of unchanged weights does not read them again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CHUNK = 4 * 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


# Digests computed in this process, so two analyzers (signatures, AIBOM) hash a file once.
_MEMO: dict[tuple[str, str], str] = {}


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlsec"


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


class HashCache:
    """sha256 by (absolute path, size, mtime, inode), persisted as JSON; never trusted blindly:
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
            try:
                data = json.loads(file.read_text(encoding="utf-8"))
                if isinstance(data, dict) and data.get("version") == 1:
                    self._entries = {
                        k: v
                        for k, v in data.get("entries", {}).items()
                        if isinstance(v, list) and len(v) == 2
                    }
            except (OSError, ValueError):
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

    def put(self, path: Path, digest: str) -> None:
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
            tmp.write_text(json.dumps({"version": 1, "entries": self._entries}), "utf-8")
            os.replace(tmp, self.file)
            self._dirty = False
        except OSError:
            pass  # a cache that cannot be written only costs time


def hash_files(
    paths: Iterable[Path], *, cache: HashCache | None = None, workers: int | None = None
) -> Mapping[Path, str]:
    """sha256 of each file, hashed in parallel; files that cannot be read are left out."""
    todo: list[Path] = []
    result: dict[Path, str] = {}
    for path in paths:
        cached = cache.get(path) if cache else None
        if not cached:
            try:
                cached = _MEMO.get((str(path), _stat_key(path)))
            except OSError:
                cached = None
        if cached:
            result[path] = cached
        else:
            todo.append(path)

    def one(path: Path) -> tuple[Path, str | None]:
        try:
            key = (str(path), _stat_key(path))
            digest = sha256_file(path)
        except OSError:
            return path, None
        _MEMO[key] = digest
        return path, digest

    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        for path, digest in pool.map(one, todo):
            if digest is not None:
                result[path] = digest
                if cache:
                    cache.put(path, digest)
    if cache:
        cache.save()
    return result
