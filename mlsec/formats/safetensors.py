"""safetensors header parsing and validation (the payload is never read).

Parsed by hand rather than with ``safetensors.safe_open``: that needs a tensor framework,
memory-maps the payload, and reports only an opaque error, while a scanner must say which
check failed (length, JSON, dtype, offsets) and must also notice bytes no tensor covers
(room for a smuggled payload). The checks mirror the Rust reader's validation.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlsec.formats import FormatError

MAX_HEADER_SIZE = 100 * 1024 * 1024  # the limit the safetensors library enforces
MAX_TENSORS = 1_000_000
MAX_DIMS = 64

# Bits per element, for every dtype the safetensors format defines.
DTYPE_BITS: Mapping[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    data_offsets: tuple[int, int]  # relative to the start of the data area

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    header_size: int  # the JSON header's length in bytes
    data_size: int  # bytes after the header
    tensors: Mapping[str, TensorInfo]
    metadata: Mapping[str, str] = field(default_factory=dict)  # ``__metadata__``
    # Byte ranges of the data area (relative to its start) that no tensor covers. The
    # reference reader rejects such files; they can carry a smuggled payload.
    gaps: tuple[tuple[int, int], ...] = ()

    @property
    def parameter_count(self) -> int:
        return sum(t.numel for t in self.tensors.values())

    @property
    def data_start(self) -> int:
        return 8 + self.header_size


def read_header(path: str | os.PathLike[str]) -> SafetensorsHeader:
    """Parse and validate the header of the safetensors file at ``path``."""
    with open(Path(path), "rb") as handle:
        file_size = os.fstat(handle.fileno()).st_size
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise FormatError(f"file is {file_size} bytes, too short for a safetensors header")
        header_size = int.from_bytes(prefix, "little")
        if header_size > MAX_HEADER_SIZE:
            raise FormatError(
                f"header length {header_size} exceeds the {MAX_HEADER_SIZE}-byte limit"
            )
        if 8 + header_size > file_size:
            raise FormatError(
                f"header length {header_size} runs past the end of the file ({file_size} bytes)"
            )
        raw = handle.read(header_size)
    return parse_header(raw, file_size - 8 - header_size)


def parse_header(raw: bytes, data_size: int) -> SafetensorsHeader:
    """Validate a header's JSON bytes against a data area of ``data_size`` bytes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"header is not UTF-8 (byte {exc.start})") from None
    if not text.startswith("{"):
        raise FormatError("header does not start with '{'")
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise FormatError(f"header is not valid JSON: {exc}") from None
    except ValueError as exc:  # duplicate keys
        raise FormatError(str(exc)) from None
    if not isinstance(document, dict):
        raise FormatError("header JSON is not an object")
    metadata_raw = document.pop("__metadata__", {})
    if not isinstance(metadata_raw, dict) or not all(
        isinstance(v, str) for v in metadata_raw.values()
    ):
        raise FormatError("__metadata__ must map strings to strings")
    if len(document) > MAX_TENSORS:
        raise FormatError(f"header lists {len(document)} tensors (limit {MAX_TENSORS})")
    tensors: dict[str, TensorInfo] = {}
    for name, entry in document.items():
        tensors[name] = _tensor(name, entry, data_size)
    gaps = _check_layout(tensors, data_size)
    return SafetensorsHeader(
        header_size=len(raw),
        data_size=data_size,
        tensors=tensors,
        metadata=dict(metadata_raw),
        gaps=gaps,
    )


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"header repeats the key {key!r}")
        out[key] = value
    return out


def _tensor(name: str, entry: object, data_size: int) -> TensorInfo:
    shown = repr(name[:80])
    if not isinstance(entry, dict):
        raise FormatError(f"tensor {shown} is not an object")
    dtype = entry.get("dtype")
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise FormatError(f"tensor {shown} has unknown dtype {str(dtype)[:40]!r}")
    shape = entry.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise FormatError(f"tensor {shown} has an invalid shape")
    offsets = entry.get("data_offsets")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
    ):
        raise FormatError(f"tensor {shown} has invalid data_offsets")
    begin, end = offsets
    if begin > end:
        raise FormatError(f"tensor {shown} has data_offsets [{begin}, {end}] that run backwards")
    if end > data_size:
        raise FormatError(f"tensor {shown} ends at {end}, past the data area ({data_size} bytes)")
    numel = math.prod(shape)
    bits = numel * DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != end - begin:
        raise FormatError(
            f"tensor {shown}: {dtype} x {shape} needs {bits / 8:g} bytes,"
            f" data_offsets give {end - begin}"
        )
    return TensorInfo(name, dtype, tuple(shape), (begin, end))


def _check_layout(tensors: Mapping[str, TensorInfo], data_size: int) -> tuple[tuple[int, int], ...]:
    """Fail on overlapping tensors; return the uncovered ranges of the data area."""
    spans = sorted(
        (t.data_offsets, name)
        for name, t in tensors.items()
        if t.data_offsets[1] > t.data_offsets[0]
    )
    gaps: list[tuple[int, int]] = []
    cursor = 0
    previous = ""
    for (begin, end), name in spans:
        if begin < cursor:
            raise FormatError(f"tensor {name[:80]!r} overlaps tensor {previous[:80]!r}")
        if begin > cursor:
            gaps.append((cursor, begin))
        cursor, previous = end, name
    if cursor < data_size:
        gaps.append((cursor, data_size))
    return tuple(gaps)
