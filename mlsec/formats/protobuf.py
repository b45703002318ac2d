"""A minimal, bounded protobuf wire-format reader (for ONNX and TensorFlow SavedModel).

Written by hand on purpose: mlsec must not depend on ``onnx`` or ``tensorflow`` at run time,
and their parsers load the whole message, weights included, into memory. This reader walks
the wire format over a buffer (usually an ``mmap`` of the file, so skipped payloads such as
large initializers are never read from disk) and lets the caller decide which
length-delimited fields to descend into. Every read is bounds-checked; bad input raises
:class:`~mlsec.formats.FormatError`.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from mlsec.formats import FormatError

Buffer = Union[bytes, bytearray, memoryview, mmap.mmap]  # noqa: UP007 (a runtime alias on 3.10)

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
MAX_DEPTH = 64  # nesting bound for recursive messages (ONNX subgraphs, functions)


@dataclass(frozen=True)
class Field:
    """One field of a message: a number, a wire type and either an int or a byte span."""

    number: int
    wire_type: int
    value: int  # the varint or fixed value; for LEN fields, the start of the payload
    end: int = 0  # for LEN fields: the end of the payload (exclusive)

    @property
    def length(self) -> int:
        return self.end - self.value if self.wire_type == LEN else 0


def read_varint(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise FormatError(f"truncated varint at offset {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise FormatError(f"varint too long at offset {pos}")


def iter_fields(buf: Buffer, start: int, end: int) -> Iterator[Field]:
    """The fields of the message in ``buf[start:end]``, without reading LEN payloads."""
    if end > len(buf) or start < 0 or start > end:
        raise FormatError(f"message span {start}..{end} is outside the data ({len(buf)} bytes)")
    pos = start
    while pos < end:
        tag, pos = read_varint(buf, pos, end)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise FormatError(f"field number 0 at offset {pos}")
        if wire_type == VARINT:
            value, pos = read_varint(buf, pos, end)
            yield Field(number, wire_type, value)
        elif wire_type == I64:
            if pos + 8 > end:
                raise FormatError(f"truncated fixed64 at offset {pos}")
            yield Field(number, wire_type, int.from_bytes(buf[pos : pos + 8], "little"))
            pos += 8
        elif wire_type == I32:
            if pos + 4 > end:
                raise FormatError(f"truncated fixed32 at offset {pos}")
            yield Field(number, wire_type, int.from_bytes(buf[pos : pos + 4], "little"))
            pos += 4
        elif wire_type == LEN:
            length, pos = read_varint(buf, pos, end)
            if pos + length > end:
                raise FormatError(
                    f"field {number} at offset {pos} claims {length} bytes, past its message"
                )
            yield Field(number, wire_type, pos, pos + length)
            pos += length
        else:  # groups are deprecated and unused by ONNX and TensorFlow
            raise FormatError(f"unsupported wire type {wire_type} at offset {pos}")


def text(buf: Buffer, field: Field, limit: int = 1 << 20) -> str:
    """A LEN field as text (UTF-8, invalid bytes replaced), cut at ``limit`` bytes."""
    if field.wire_type != LEN:
        raise FormatError(f"field {field.number} should be length-delimited")
    stop = min(field.end, field.value + limit)
    return bytes(buf[field.value : stop]).decode("utf-8", "replace")


def signed64(value: int) -> int:
    """A varint read as a two's-complement int64 (protobuf ``int64``)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def packed_varints(buf: Buffer, field: Field, limit: int = 64) -> list[int]:
    """Up to ``limit`` values of a packed repeated varint field."""
    out: list[int] = []
    pos = field.value
    while pos < field.end and len(out) < limit:
        value, pos = read_varint(buf, pos, field.end)
        out.append(signed64(value))
    return out


def fixed32_float(value: int) -> float:
    return float(struct.unpack("<f", value.to_bytes(4, "little"))[0])


@contextmanager
def mapped(path: str | os.PathLike[str]) -> Iterator[Buffer]:
    """The file's bytes as a read-only memory map (pages are read only when touched)."""
    with open(Path(path), "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            yield b""
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mem:
            yield mem
