"""File kinds from content (magic bytes and a pickle probe), with the name as a tie-breaker.

Attackers rename files; a pickle called ``weights.txt`` is still a pickle, and a file named
``.pkl`` whose first opcodes do not decode is not one. Only formats with no reliable magic
(ONNX and TensorFlow protobufs) fall back to names. The magic numbers are the rows of
:mod:`mlsec.models.registry`; protocol 0-5 pickles are recognised by :mod:`mlsec.models.probe`.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Collection

from mlsec.models.probe import looks_like_pickle
from mlsec.models.registry import BY_NAME, MAGIC_BY_FIRST_BYTE, PICKLE_EXTENSIONS, FileKind

HEAD_SIZE = 1024
_ONNX = BY_NAME["onnx"]
_SAVED_MODEL = BY_NAME["tf-savedmodel"]

LFS_PREFIX = b"version https://git-lfs.github.com/spec/v1\n"
_LFS_OID = re.compile(rb"^oid sha256:([0-9a-f]{64})$", re.MULTILINE)
_LFS_SIZE = re.compile(rb"^size (\d+)$", re.MULTILINE)


def sniff(
    head: bytes,
    name: str,
    size: int | None = None,
    more: Callable[[int], bytes] | None = None,
) -> FileKind:
    """The kind of a file from its first bytes (up to :data:`HEAD_SIZE`), name and ``size``
    (if known: it lets the pickle probe reject arguments longer than the file). ``more(n)``:
    the file's first ``n`` bytes, for a probe the head is too short for (the walk reads them
    from the descriptor it already holds: :func:`mlsec.walk.read_and_sniff`).

    Magic numbers first, in the registry's order; then the pickle probe, whatever the name
    and first byte; then the formats only a name tells (ONNX, SavedModel protobufs, which
    never decode as opcodes); then text or binary.
    """
    if not head:
        return FileKind.EMPTY
    if head.startswith(LFS_PREFIX):
        return FileKind.LFS_POINTER
    for magic, kind in MAGIC_BY_FIRST_BYTE[head[0]]:
        if magic(head):
            return kind
    if looks_like_pickle(head, len(head) < HEAD_SIZE, size, more):
        return FileKind.PICKLE
    lower = name.lower()
    if lower.endswith(_ONNX.names):
        return FileKind.ONNX
    if lower.endswith(_SAVED_MODEL.names):
        return FileKind.TF_SAVEDMODEL
    if _is_text(head):
        return FileKind.TEXT
    return FileKind.BINARY


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        return exc.start >= len(head) - 3
    return True


def parse_lfs_pointer(data: bytes) -> tuple[str, int] | None:
    """The (sha256 oid, size) of a Git LFS pointer file, or None if it is not one."""
    if not data.startswith(LFS_PREFIX):
        return None
    oid, size = _LFS_OID.search(data), _LFS_SIZE.search(data)
    if not oid or not size:
        return None
    return oid.group(1).decode(), int(size.group(1))


# Enough for any real Keras archive (a handful of members); a directory beyond it is not one.
_KERAS_MAX_MEMBERS = 4096


def is_keras_zip(path: str | os.PathLike[str]) -> bool:
    """Whether the zip at ``path`` is a Keras v3 archive (config.json at the top level, beside
    metadata.json or the weights). Reads only the central directory, with mlsec's tolerant
    zip reader, so checking a large PyTorch checkpoint costs nothing."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return _keras_zip(os.fspath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)  # the formats and modelscan analyzers ask about one zip
def _keras_zip(path: str, size: int, mtime_ns: int) -> bool:
    from mlsec.formats import FormatError
    from mlsec.formats.zipread import read_zip

    try:
        with open(path, "rb") as handle:
            names = {m.name for m in read_zip(handle, size, _KERAS_MAX_MEMBERS).members}
    except (OSError, FormatError):
        return False
    return is_keras_archive(names)


def is_keras_archive(names: Collection[str]) -> bool:
    """Whether zip member ``names`` are those of a Keras v3 archive."""
    return "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names)


__all__ = [
    "HEAD_SIZE",
    "LFS_PREFIX",
    "PICKLE_EXTENSIONS",
    "FileKind",
    "is_keras_archive",
    "is_keras_zip",
    "parse_lfs_pointer",
    "sniff",
]
