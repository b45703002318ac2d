"""GGUF header parsing: version, metadata key/values, tensor infos (no tensor data).

Parsed by hand rather than with the ``gguf`` package: that package is not a runtime
dependency (it pulls in NumPy), and its reader materialises every array, including
vocabularies of hundreds of thousands of tokens, without bounds. This reader streams the
header once, keeps strings and arrays within limits, and raises
:class:`~mlsec.formats.FormatError` on anything malformed.
"""

from __future__ import annotations

import io
import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from mlsec.formats import FormatError

MAX_KV = 1_000_000
MAX_TENSORS = 10_000_000
MAX_DIMS = 8  # GGML allows 4
MAX_KEY_LENGTH = 65_535
MAX_STRING = 64 * 1024 * 1024  # a string longer than this is not a plausible header value
KEEP_STRING = 1024 * 1024  # keep up to this many bytes of a string value
# Chat templates are kept whole up to this size: a payload must not hide past a cut-off.
KEEP_TEMPLATE = 16 * 1024 * 1024
KEEP_ARRAY = 16  # keep the first items of an array (token lists are summarised)
MAX_ARRAY = 100_000_000

UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY = range(10)
UINT64, INT64, FLOAT64 = 10, 11, 12
_SCALARS: Mapping[int, str] = {
    UINT8: "B",
    INT8: "b",
    UINT16: "H",
    INT16: "h",
    UINT32: "I",
    INT32: "i",
    FLOAT32: "f",
    BOOL: "?",
    UINT64: "Q",
    INT64: "q",
    FLOAT64: "d",
}
TYPE_NAMES: Mapping[int, str] = {
    UINT8: "uint8",
    INT8: "int8",
    UINT16: "uint16",
    INT16: "int16",
    UINT32: "uint32",
    INT32: "int32",
    FLOAT32: "float32",
    BOOL: "bool",
    STRING: "string",
    ARRAY: "array",
    UINT64: "uint64",
    INT64: "int64",
    FLOAT64: "float64",
}


@dataclass(frozen=True)
class GGUFArray:
    """An array value: its element type, its length, and its first items."""

    element_type: str
    count: int
    head: tuple[Any, ...]

    def to_json(self) -> Any:
        head = [item.to_json() if isinstance(item, GGUFArray) else item for item in self.head]
        if self.count <= len(self.head):
            return head
        return {"type": self.element_type, "count": self.count, "first": head}


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int


@dataclass(frozen=True)
class GGUFInfo:
    version: int
    byte_order: str  # "little" or "big"
    metadata: Mapping[str, Any]  # key -> str | int | float | bool | GGUFArray
    tensor_count: int
    tensors: tuple[GGUFTensor, ...] = ()
    truncated_keys: tuple[str, ...] = ()  # string values cut at KEEP_STRING
    header_end: int = 0

    @property
    def parameter_count(self) -> int:
        return sum(math.prod(t.shape) for t in self.tensors)

    @property
    def chat_templates(self) -> Mapping[str, str]:
        """``tokenizer.chat_template`` and its named variants (``...chat_template.<name>``)."""
        return {
            k: v
            for k, v in self.metadata.items()
            if (k == "tokenizer.chat_template" or k.startswith("tokenizer.chat_template."))
            and isinstance(v, str)
        }

    def metadata_json(self, prefixes: tuple[str, ...] = ("general.",)) -> dict[str, Any]:
        """Small, JSON-ready metadata: keys under ``prefixes``, arrays summarised."""
        out: dict[str, Any] = {}
        for key, value in self.metadata.items():
            if not key.startswith(prefixes):
                continue
            if isinstance(value, GGUFArray):
                out[key] = value.to_json()
            elif isinstance(value, str):
                out[key] = value[:512]
            else:
                out[key] = value
        return out


class _Reader:
    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle = handle
        self.size = size
        self.order = "<"
        self.v1 = False  # GGUF version 1 used 32-bit lengths and counts

    def length(self, what: str) -> int:
        return self.u32(what) if self.v1 else self.u64(what)

    @property
    def pos(self) -> int:
        return self.handle.tell()

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise FormatError(f"{what} at offset {self.pos} runs past the end of the file")
        data = self.handle.read(n)
        if len(data) != n:
            raise FormatError(f"{what} at offset {self.pos} is truncated")
        return data

    def skip(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise FormatError(f"{what} at offset {self.pos} runs past the end of the file")
        self.handle.seek(n, io.SEEK_CUR)

    def scalar(self, code: str, what: str) -> Any:
        fmt = self.order + code
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def u32(self, what: str) -> int:
        return int(self.scalar("I", what))

    def u64(self, what: str) -> int:
        return int(self.scalar("Q", what))

    def string(
        self, what: str, limit: int = MAX_STRING, keep: int = KEEP_STRING
    ) -> tuple[str, bool]:
        length = self.length(f"{what} length")
        if length > limit:
            raise FormatError(f"{what} at offset {self.pos} claims {length} bytes")
        data = self.take(min(length, keep), what)
        if length > keep:
            self.skip(length - keep, what)
        return data.decode("utf-8", "replace"), length > keep


def read_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Parse the GGUF header of the file at ``path`` (bounded; tensor data is not read)."""
    with open(Path(path), "rb", buffering=1 << 16) as handle:
        size = os.fstat(handle.fileno()).st_size
        return _parse(_Reader(handle, size))


def _parse(r: _Reader) -> GGUFInfo:
    if r.take(4, "magic") != b"GGUF":
        raise FormatError("not a GGUF file (bad magic)")
    version_bytes = r.take(4, "version")
    version = int.from_bytes(version_bytes, "little")
    byte_order = "little"
    if version & 0xFFFF == 0 and version:  # big-endian files read as huge little-endian
        version = int.from_bytes(version_bytes, "big")
        r.order, byte_order = ">", "big"
    if version not in (1, 2, 3):
        raise FormatError(f"unsupported GGUF version {version}")
    r.v1 = version == 1
    tensor_count = r.length("tensor count")
    kv_count = r.length("metadata count")
    if tensor_count > MAX_TENSORS or kv_count > MAX_KV:
        raise FormatError(f"implausible counts: {tensor_count} tensors, {kv_count} keys")
    metadata: dict[str, Any] = {}
    truncated: list[str] = []
    for _ in range(kv_count):
        key, _cut = r.string("metadata key", limit=MAX_KEY_LENGTH)
        value_type = r.u32(f"type of {key!r}")
        value, was_cut = _value(r, value_type, key, depth=0)
        if key in metadata:
            raise FormatError(f"metadata key {key!r} appears twice")
        metadata[key] = value
        if was_cut:
            truncated.append(key)
    tensors: list[GGUFTensor] = []
    for _ in range(tensor_count):
        name, _cut = r.string("tensor name", limit=MAX_KEY_LENGTH)
        n_dims = r.u32(f"dimensions of {name!r}")
        if n_dims > MAX_DIMS:
            raise FormatError(f"tensor {name!r} has {n_dims} dimensions")
        dims = tuple(
            r.u64(f"shape of {name!r}") if version > 1 else r.u32("dim") for _ in range(n_dims)
        )
        ggml_type = r.u32(f"type of {name!r}")
        offset = r.u64(f"offset of {name!r}")
        tensors.append(GGUFTensor(name, dims, ggml_type, offset))
    return GGUFInfo(
        version=version,
        byte_order=byte_order,
        metadata=metadata,
        tensor_count=tensor_count,
        tensors=tuple(tensors),
        truncated_keys=tuple(truncated),
        header_end=r.pos,
    )


def _value(r: _Reader, value_type: int, key: str, depth: int) -> tuple[Any, bool]:
    if value_type in _SCALARS:
        return r.scalar(_SCALARS[value_type], f"value of {key!r}"), False
    if value_type == STRING:
        keep = KEEP_TEMPLATE if key.startswith("tokenizer.chat_template") else KEEP_STRING
        return r.string(f"value of {key!r}", keep=keep)
    if value_type == ARRAY:
        if depth > 2:
            raise FormatError(f"arrays nested too deeply in {key!r}")
        element_type = r.u32(f"array type of {key!r}")
        count = r.length(f"array length of {key!r}")
        if count > MAX_ARRAY:
            raise FormatError(f"array {key!r} claims {count} items")
        if element_type in _SCALARS:
            width = struct.calcsize(r.order + _SCALARS[element_type])
            if r.pos + count * width > r.size:
                raise FormatError(f"array {key!r} runs past the end of the file")
            head = tuple(
                r.scalar(_SCALARS[element_type], key) for _ in range(min(count, KEEP_ARRAY))
            )
            r.skip((count - len(head)) * width, f"array {key!r}")
            return GGUFArray(TYPE_NAMES[element_type], count, head), False
        if element_type not in (STRING, ARRAY):
            raise FormatError(f"array {key!r} has unknown element type {element_type}")
        items: list[Any] = []
        for index in range(count):
            if index >= KEEP_ARRAY and element_type == STRING:
                _skip_strings(r, count - index, key)
                break
            item, _cut = _value(r, element_type, key, depth + 1)
            if index < KEEP_ARRAY:
                items.append(item[:256] if isinstance(item, str) else item)
        return GGUFArray(TYPE_NAMES[element_type], count, tuple(items)), False
    raise FormatError(f"metadata {key!r} has unknown value type {value_type}")


def _skip_strings(r: _Reader, count: int, key: str) -> None:
    """Skip ``count`` length-prefixed strings (a vocabulary) reading blocks, not items."""
    block = b""
    pos = 0
    base = r.pos  # file offset of block[0]
    length_format = r.order + ("I" if r.v1 else "Q")
    width = 4 if r.v1 else 8
    for _ in range(count):
        if pos + width > len(block):
            base += pos
            r.handle.seek(base)
            block, pos = r.handle.read(1 << 20), 0
            if len(block) < width:
                raise FormatError(f"array {key!r} runs past the end of the file")
        (length,) = struct.unpack_from(length_format, block, pos)
        if length > MAX_STRING:
            raise FormatError(f"item of array {key!r} claims {length} bytes")
        pos += width + length
    end = base + pos
    if end > r.size:
        raise FormatError(f"array {key!r} runs past the end of the file")
    r.handle.seek(end)
