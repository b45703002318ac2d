"""The OpenSSF model-signing manifest: parse the signed statement, compare it with the disk.

Written here rather than taken from model-signing 1.1.1, whose verifier re-hashes with SHA-256
only, returns auto-detected shard sizes as floats, prints warnings to stdout and imports
pyOpenSSL without declaring it. This module reads every released payload format:

- v0.2 (predicate ``https://model_signing/Digests/v0.1``): one in-toto subject per file;
- v0.3 to v1.1 (predicate ``https://model_signing/signature/v1.0``): one subject (the model
  name and a sha256 over the resource digests in order), resources with per-file or per-shard
  (``path:start:end``) digests in sha256, blake2b or blake3, and the serialization used
  (``files`` or ``shards``, shard size, symlinks, ignored paths).

Entry names are untrusted: absolute names, ``..`` and the like are rejected (a signature must
never make mlsec read outside the model folder). Files are hashed with
:func:`mlsec.hashing.hash_files` (shared with the AIBOM, in parallel), other algorithms and
shards in a small thread pool.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlsec.hashing import CHUNK, hash_files
from mlsec.safeopen import open_regular

STATEMENT_V1 = "https://in-toto.io/Statement/v1"
PREDICATE_V1 = "https://model_signing/signature/v1.0"
PREDICATE_V02 = "https://model_signing/Digests/v0.1"
# model-signing ignores these when hashing a folder unless told otherwise.
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
MAX_NAME_CHARS = 4096  # PATH_MAX: a longer signed name cannot be a file on disk
_HASHES = ("sha256", "blake2b", "blake3")


class ManifestError(ValueError):
    """The signed statement is not a model-signing manifest mlsec can read."""


@dataclass(frozen=True)
class Entry:
    """One signed resource: a whole file or a shard ``[start, end)`` of one."""

    name: str  # as written in the manifest
    path: str  # '/'-separated, relative to the model folder; "." for a single-file model
    algorithm: str  # sha256 | blake2b | blake3
    digest: str  # lowercase hex
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True)
class Manifest:
    model_name: str
    method: str  # files | shards
    entries: tuple[Entry, ...]
    rejected: tuple[str, ...] = ()  # names that are absolute or leave the folder
    ignore_paths: tuple[str, ...] = ()
    shard_size: int | None = None
    allow_symlinks: bool = False
    version: str = "v1.0"

    @property
    def single_file(self) -> bool:
        return len(self.entries) > 0 and all(e.path == "." for e in self.entries)

    def files(self) -> list[str]:
        return sorted({e.path for e in self.entries})


def safe_relpath(name: str) -> str | None:
    """``name`` as a clean relative POSIX path, or None if it is absolute or escapes."""
    if not name or "\0" in name or "\\" in name or len(name) > MAX_NAME_CHARS:
        return None
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    if not parts:
        return "." if name.strip("/") in (".", "") and name != "" else None
    return "/".join(parts)


def _algorithm(raw: object) -> tuple[str, int | None]:
    """``sha256`` / ``blake2b`` / ``blake3``, and the shard size from ``<hash>-sharded-<n>``."""
    if not isinstance(raw, str):
        raise ManifestError(f"hash algorithm {raw!r} is not a string")
    name, _, shard = raw.partition("-sharded-")
    name = {"blake2": "blake2b", "file-sha256": "sha256"}.get(name, name)
    if name not in _HASHES:
        raise ManifestError(f"unsupported hash algorithm {raw!r}")
    if shard:
        if not shard.isdigit() or int(shard) <= 0:
            raise ManifestError(f"bad shard size in {raw!r}")
        return name, int(shard)
    return name, None


def _int(value: object, where: str) -> int:
    # model-signing 1.1.1 writes auto-detected shard sizes as floats (1e9 becomes 1000000000.0)
    if isinstance(value, bool):
        raise ManifestError(f"{where} is not an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise ManifestError(f"{where} is not a non-negative integer: {value!r}")
    return value


def _hex(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{where} is not a hex string")
    try:
        bytes.fromhex(value)
    except ValueError:
        raise ManifestError(f"{where} is not hex") from None
    return value.lower()


def parse_statement(payload: bytes) -> Manifest:
    from mlsec import boundedjson

    try:
        statement = boundedjson.loads(payload)
    except boundedjson.JsonLimitError as exc:
        raise ManifestError(f"payload is not a usable JSON document: {exc}") from None
    if not isinstance(statement, dict):
        raise ManifestError("payload is not an in-toto statement")
    if statement.get("_type") != STATEMENT_V1:
        raise ManifestError(f"not an in-toto v1 statement ({statement.get('_type')!r})")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise ManifestError("statement has no subject")
    predicate_type = statement.get("predicateType")
    if predicate_type == PREDICATE_V02:
        return _parse_v02(subjects)
    if predicate_type != PREDICATE_V1:
        raise ManifestError(f"not a model-signing statement (predicate {predicate_type!r})")
    if len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise ManifestError("a model-signing statement has exactly one subject")
    subject = subjects[0]
    model_name = subject.get("name")
    digest = subject.get("digest")
    if not isinstance(model_name, str) or not isinstance(digest, dict):
        raise ManifestError("subject lacks a name or digest")
    root_digest = _hex(digest.get("sha256"), "subject sha256 digest")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise ManifestError("statement has no predicate")
    serialization = predicate.get("serialization")
    resources = predicate.get("resources")
    if not isinstance(serialization, dict) or not isinstance(resources, list):
        raise ManifestError("predicate lacks serialization or resources")
    method = serialization.get("method")
    if method not in ("files", "shards"):
        raise ManifestError(f"unknown serialization method {method!r}")
    shard_size = None
    if method == "shards":
        shard_size = _int(serialization.get("shard_size"), "shard_size")
        if shard_size <= 0:
            raise ManifestError("shard_size must be positive")
    ignore_raw = serialization.get("ignore_paths", [])
    if not isinstance(ignore_raw, list) or not all(isinstance(p, str) for p in ignore_raw):
        raise ManifestError("ignore_paths is not a list of strings")
    ignore_paths = tuple(p for p in (safe_relpath(p) for p in ignore_raw) if p and p != ".")
    allow_symlinks = serialization.get("allow_symlinks", False) in (True, "true", "True")

    root = hashlib.sha256()
    entries: list[Entry] = []
    rejected: list[str] = []
    for i, resource in enumerate(resources):
        if not isinstance(resource, dict):
            raise ManifestError(f"resource {i} is not an object")
        name = resource.get("name")
        if not isinstance(name, str):
            raise ManifestError(f"resource {i} has no name")
        value = _hex(resource.get("digest"), f"resource {name!r} digest")
        root.update(bytes.fromhex(value))
        algorithm, shard_from_name = _algorithm(resource.get("algorithm"))
        start = end = None
        path_part = name
        if method == "shards":
            path_part, sep1, rest = name.rpartition(":")
            path_part, sep2, start_raw = path_part.rpartition(":")
            if not sep1 or not sep2:
                raise ManifestError(f"shard name {name!r} is not path:start:end")
            try:
                start, end = int(start_raw), int(rest)
            except ValueError:
                raise ManifestError(f"shard name {name!r} has bad offsets") from None
            if start < 0 or end <= start or end - start > (shard_size or 0):
                raise ManifestError(f"shard {name!r} does not fit the shard size")
            if shard_from_name is not None and shard_from_name != shard_size:
                raise ManifestError(f"shard {name!r} disagrees with shard_size")
        path = safe_relpath(path_part)
        if path is None:
            rejected.append(name)
            continue
        entries.append(Entry(name, path, algorithm, value, start, end))
    if root.hexdigest() != root_digest:
        raise ManifestError(
            "manifest is inconsistent: the subject digest does not match the resources"
        )
    if any(e.path == "." for e in entries) and (len({e.path for e in entries}) > 1):
        raise ManifestError("'.' (a single-file model) mixed with other entries")
    if any(e.path == "." for e in entries) and (
        safe_relpath(model_name) != model_name or "/" in model_name
    ):
        raise ManifestError(f"single-file model name {model_name!r} is not a plain file name")
    return Manifest(
        model_name=model_name,
        method=str(method),
        entries=tuple(entries),
        rejected=tuple(rejected),
        ignore_paths=ignore_paths,
        shard_size=shard_size,
        allow_symlinks=allow_symlinks,
    )


def _parse_v02(subjects: list[Any]) -> Manifest:
    entries: list[Entry] = []
    rejected: list[str] = []
    for i, subject in enumerate(subjects):
        if not isinstance(subject, dict) or not isinstance(subject.get("name"), str):
            raise ManifestError(f"subject {i} has no name")
        digest = subject.get("digest")
        if not isinstance(digest, dict):
            raise ManifestError(f"subject {i} has no digest")
        name = subject["name"]
        path = safe_relpath(name)
        value = _hex(digest.get("sha256"), f"subject {name!r} sha256")
        if path is None or path == ".":
            rejected.append(name)
            continue
        entries.append(Entry(name, path, "sha256", value))
    return Manifest(
        model_name="",
        method="files",
        entries=tuple(entries),
        rejected=tuple(rejected),
        version="v0.2",
    )


# -- hashing ----------------------------------------------------------------------------------
def _new_hasher(algorithm: str) -> Any:
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "blake2b":
        return hashlib.blake2b()
    try:
        import blake3  # optional: only BLAKE3-signed models need it
    except ImportError:
        raise UnsupportedHash("BLAKE3 needs the 'blake3' package (pip install blake3)") from None
    return blake3.blake3()


class UnsupportedHash(RuntimeError):
    pass


def digest_range(path: Path, algorithm: str, start: int = 0, end: int | None = None) -> str:
    """Hex digest of ``path[start:end]`` (the whole file when ``end`` is None)."""
    hasher = _new_hasher(algorithm)
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    remaining = None if end is None else end - start
    with open_regular(path) as handle:  # a FIFO or device swapped in is refused, not read
        if start:
            handle.seek(start)
        while remaining is None or remaining > 0:
            n = handle.readinto(  # type: ignore[attr-defined]
                buffer if remaining is None or remaining >= CHUNK else view[:remaining]
            )
            if not n:
                break
            hasher.update(view[:n])
            if remaining is not None:
                remaining -= n
    return str(hasher.hexdigest())


# -- comparison with the disk -------------------------------------------------------------------
@dataclass
class Comparison:
    """How the folder on disk differs from the signed manifest (paths relative to the folder)."""

    intact: list[str] = field(default_factory=list)
    modified: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    missing: list[str] = field(default_factory=list)
    not_covered: list[str] = field(default_factory=list)
    unsupported: str | None = None
    lfs_pointers: list[str] = field(default_factory=list)  # intact by their LFS oid


def _lfs_pointer(path: Path) -> tuple[str, int] | None:
    from mlsec.models.sniff import parse_lfs_pointer

    try:
        with open_regular(path) as handle:
            head = handle.read(1025)
        return None if len(head) > 1024 else parse_lfs_pointer(head)
    except OSError:
        return None


def _inside(folder: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return False
    return True


def compare(
    manifest: Manifest,
    folder: Path,
    present: Mapping[str, int],
    *,
    ignored: Callable[[str], bool],
    workers: int | None = None,
) -> Comparison:
    """Compare ``manifest`` with ``folder``; ``present`` maps the files seen there to sizes.

    ``ignored(relpath)`` says whether a present file that the manifest does not list is
    exempt (ignore paths of the signature and of the configuration, the signature itself).
    """
    result = Comparison()
    if manifest.single_file:
        targets = {".": folder / manifest.model_name}
    else:
        targets = {p: folder / p for p in manifest.files()}
    by_path: dict[str, list[Entry]] = defaultdict(list)
    for entry in manifest.entries:
        by_path[entry.path].append(entry)

    sha_whole: dict[str, Path] = {}
    ranged: list[tuple[str, Entry, Path]] = []
    for rel, path in sorted(targets.items()):
        entries = by_path[rel]
        shown = manifest.model_name if rel == "." else rel
        if not os.path.lexists(path):
            result.missing.append(shown)
            continue
        if not _inside(folder, path):
            result.modified.append((shown, "is a symlink that leads outside the model folder"))
            continue
        if path.is_symlink() and not manifest.allow_symlinks:
            result.modified.append((shown, "is a symlink, which the signature does not allow"))
            continue
        if not path.is_file():
            result.modified.append((shown, "is no longer a regular file"))
            continue
        if manifest.method == "shards":
            size = path.stat().st_size
            problem = _shard_layout(entries, size, manifest.shard_size or 0)
            if problem:
                result.modified.append((shown, problem))
                continue
            ranged.extend((shown, e, path) for e in entries)
        elif len(entries) != 1:
            result.modified.append((shown, "is listed more than once in the signature"))
        elif entries[0].algorithm == "sha256":
            sha_whole[shown] = path
        else:
            ranged.append((shown, entries[0], path))

    digests = hash_files(sha_whole.values(), workers=workers)
    bad: dict[str, str] = {}
    for shown, path in sha_whole.items():
        got = digests.get(path)
        expected = by_path["." if manifest.single_file else shown][0].digest
        if got is None:
            bad[shown] = "could not be read"
        elif got != expected:
            pointer = _lfs_pointer(path)
            if pointer is None:
                bad[shown] = "content differs from the signed digest"
            elif pointer[0] == expected:
                # A Git LFS pointer names its content by sha256: this one commits to exactly
                # the signed bytes (git-lfs checks the oid when it fetches them).
                result.lfs_pointers.append(shown)
            else:
                bad[shown] = f"is a Git LFS pointer to other content (oid {pointer[0][:16]})"

    def one(item: tuple[str, Entry, Path]) -> tuple[str, bool]:
        shown, entry, path = item
        got = digest_range(path, entry.algorithm, entry.start or 0, entry.end)
        return shown, got == entry.digest

    if ranged:
        try:
            with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
                for shown, ok in pool.map(one, ranged):
                    if not ok and shown not in bad:
                        bad[shown] = "content differs from the signed digest"
        except UnsupportedHash as exc:
            result.unsupported = str(exc)
            return result
        except OSError as exc:
            result.unsupported = f"cannot read a signed file: {exc.strerror}"
            return result
    checked = set(sha_whole) | {shown for shown, _, _ in ranged}
    checked -= set(result.lfs_pointers)
    for shown in sorted(checked):
        if shown in bad:
            result.modified.append((shown, bad[shown]))
        else:
            result.intact.append(shown)
    result.modified.sort()

    if not manifest.single_file:
        listed = set(targets)
        for rel, size in sorted(present.items()):
            # Shard serialization has no shard for an empty file, so it never lists one.
            if manifest.method == "shards" and size == 0:
                continue
            if rel not in listed and not ignored(rel):
                result.not_covered.append(rel)
    return result


def _shard_layout(entries: list[Entry], size: int, shard_size: int) -> str | None:
    """Why the shards listed for one file no longer describe it, or None."""
    spans = sorted((e.start or 0, e.end or 0) for e in entries)
    position = 0
    for start, end in spans:
        if start != position or end - start > shard_size:
            return "its signed shards overlap or leave gaps"
        position = end
    if position != size:
        return f"size changed (signed {position} bytes, now {size})"
    return None


def is_ignored(rel: str, patterns: Iterable[str]) -> bool:
    """Whether ``rel`` is one of, or below one of, the manifest's ignore paths."""
    return any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in patterns)


def ignore_set(manifest: Manifest, signature_name: str) -> tuple[str, ...]:
    return (*manifest.ignore_paths, *GIT_PATHS, signature_name)


def describe(manifest: Manifest) -> Mapping[str, Any]:
    return {
        "format": manifest.version,
        "method": manifest.method,
        "algorithms": sorted({e.algorithm for e in manifest.entries}),
        "shard_size": manifest.shard_size,
        "entries": len(manifest.entries),
    }
