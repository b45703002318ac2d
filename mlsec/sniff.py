"""File kinds from content (magic bytes), with the name only as a tie-breaker.

Attackers rename files; a pickle called ``weights.txt`` is still a pickle. Only formats with
no reliable magic (ONNX and TensorFlow protobufs, protocol 0/1 pickles) fall back to names.
"""

from __future__ import annotations

import enum
import functools
import os
import re
from collections.abc import Collection

HEAD_SIZE = 1024

LFS_PREFIX = b"version https://git-lfs.github.com/spec/v1\n"
_LFS_OID = re.compile(rb"^oid sha256:([0-9a-f]{64})$", re.MULTILINE)
_LFS_SIZE = re.compile(rb"^size (\d+)$", re.MULTILINE)


class FileKind(str, enum.Enum):
    EMPTY = "empty"
    LFS_POINTER = "lfs-pointer"
    PICKLE = "pickle"
    ZIP = "zip"
    TAR = "tar"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    LZMA = "lzma"
    LZ4 = "lz4"
    ZLIB = "zlib"
    JOBLIB_ZFILE = "joblib-zfile"
    NUMPY = "numpy"
    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    HDF5 = "hdf5"
    ONNX = "onnx"
    TF_SAVEDMODEL = "tf-savedmodel"
    TEXT = "text"
    BINARY = "binary"

    @property
    def is_model_candidate(self) -> bool:
        return self not in (FileKind.EMPTY, FileKind.TEXT, FileKind.LFS_POINTER)


PICKLE_EXTENSIONS = frozenset(
    {".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".dat", ".data", ".p", ".sav"}
)


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n < 100 * 1024**2 and head[8:9] == b"{"


def _looks_like_lzma_alone(head: bytes) -> bool:
    """Raw LZMA ("alone" format, e.g. joblib's lzma compressor): properties, dictionary size,
    uncompressed size. No magic, so require the encoder's usual values."""
    if len(head) < 13 or head[0] != 0x5D:
        return False
    dict_size = int.from_bytes(head[1:5], "little")
    if dict_size < 4096 or dict_size & (dict_size - 1):
        return False
    size = int.from_bytes(head[5:13], "little")
    return size == 2**64 - 1 or size < 2**48


def sniff(head: bytes, name: str) -> FileKind:
    """Guess the kind of a file from its first bytes (up to :data:`HEAD_SIZE`) and name."""
    lower = name.lower()
    ext = lower[lower.rfind(".") :] if "." in lower else ""
    if not head:
        return FileKind.EMPTY
    if head.startswith(LFS_PREFIX):
        return FileKind.LFS_POINTER
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return FileKind.PICKLE
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return FileKind.ZIP
    if len(head) > 262 and head[257:262] == b"ustar":
        return FileKind.TAR
    if head.startswith(b"\x1f\x8b"):
        return FileKind.GZIP
    if head.startswith(b"BZh"):
        return FileKind.BZIP2
    if head.startswith(b"\xfd7zXZ\x00"):
        return FileKind.XZ
    if _looks_like_lzma_alone(head):
        return FileKind.LZMA
    if head.startswith(b"\x04\x22\x4d\x18"):
        return FileKind.LZ4
    if head.startswith(b"ZF0x"):
        return FileKind.JOBLIB_ZFILE
    if head.startswith(b"\x93NUMPY"):
        return FileKind.NUMPY
    if head.startswith(b"GGUF"):
        return FileKind.GGUF
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return FileKind.HDF5
    if _looks_like_safetensors(head):
        return FileKind.SAFETENSORS
    if (
        len(head) >= 2
        and head[0] == 0x78
        and head[1] in (0x01, 0x5E, 0x9C, 0xDA)
        and ((head[0] << 8 | head[1]) % 31 == 0)
    ):
        return FileKind.ZLIB
    if ext == ".onnx":
        return FileKind.ONNX
    if lower.endswith("saved_model.pb") or lower.endswith("saved_model.pbtxt"):
        return FileKind.TF_SAVEDMODEL
    if ext in PICKLE_EXTENSIONS and head[:1] in (b"(", b"c", b"]", b"}", b"I", b"S", b"N", b"\x80"):
        # Protocol 0/1 pickles have no magic; trust a pickle-ish extension plus a plausible
        # first opcode.
        return FileKind.PICKLE
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
