"""A tolerant, read-only zip reader driven by the central directory.

Why not :mod:`zipfile`: PyTorch's loader (miniz) trusts the central directory and ignores
the general-purpose flag bits, local-header names and CRCs. Python's zipfile refuses such
archives ("File name in directory ... and header ... differ", "encrypted", "Bad CRC-32"),
and scanners built on it give up, while ``torch.load`` still unpickles the members. This
reader reads what a tolerant loader reads and reports every disagreement as an anomaly
instead of failing. Members are opened as bounded streams, never read whole.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import IO, Any, NamedTuple, cast

from mlsec.formats import FormatError
from mlsec.formats.streams import (
    CHUNK,
    Budget,
    Decompressing,
    LimitExceeded,
    Window,
    open_decompressed,
)
from mlsec.records import Slotted

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_MAX_COMMENT = 0xFFFF

METHODS = {0: "stored", 8: "deflate", 12: "bzip2", 14: "lzma", 93: "zstd"}


class UnsupportedCompression(FormatError):
    """A member's compression method cannot be decompressed here (its content is unchecked)."""


class ZipMember(Slotted):
    """One central-directory entry (slotted: a checkpoint has hundreds of them)."""

    __slots__ = (
        "anomalies",
        "compressed_size",
        "crc",
        "data_offset",
        "flags",
        "header_offset",
        "method",
        "name",
        "size",
    )

    def __init__(
        self,
        name: str,
        method: int,
        flags: int,
        crc: int,
        compressed_size: int,
        size: int,
        header_offset: int,
    ) -> None:
        self.name = name
        self.method = method
        self.flags = flags
        self.crc = crc
        self.compressed_size = compressed_size
        self.size = size
        self.header_offset = header_offset
        self.data_offset: int | None = None  # resolved from the local header
        self.anomalies: list[str] = []

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/") and self.size == 0


class ZipArchive(NamedTuple):
    members: list[ZipMember]
    declared_count: int
    anomalies: list[str]
    prefix: int  # bytes before the archive (self-extracting stubs, appended data)


def _decode_name(raw: bytes, flags: int) -> str:
    if flags & 0x800:
        return raw.decode("utf-8", "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437")


def _zip64_extra(extra: bytes, sizes: list[int]) -> list[int]:
    """Replace 0xFFFFFFFF fields of ``sizes`` (size, compressed, offset) from a ZIP64 extra."""
    i = 0
    while i + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, i)
        body = extra[i + 4 : i + 4 + length]
        if tag == 0x0001:
            j = 0
            out = list(sizes)
            for k, value in enumerate(sizes):
                if value == 0xFFFFFFFF and j + 8 <= len(body):
                    out[k] = struct.unpack_from("<Q", body, j)[0]
                    j += 8
            return out
        i += 4 + length
    return sizes


def read_zip(handle: IO[bytes], size: int, max_members: int) -> ZipArchive:
    """Parse the central directory of the zip in ``handle`` (``size`` bytes)."""
    tail_len = min(size, 22 + _MAX_COMMENT + 20)
    handle.seek(size - tail_len)
    tail = handle.read(tail_len)
    at = tail.rfind(_EOCD)
    while at >= 0 and at + 22 > len(tail):
        at = tail.rfind(_EOCD, 0, at)
    if at < 0:
        raise FormatError("no end-of-central-directory record (truncated or not a zip)")
    eocd_pos = size - tail_len + at
    (_, _, _, _, count, cd_size, cd_offset, _) = struct.unpack_from("<4sHHHHIIH", tail, at)
    anomalies: list[str] = []
    directory_end = eocd_pos  # where the central directory ends, if nothing is prepended
    # ZIP64: the locator sits just before the classic record.
    if at >= 20 and tail[at - 20 : at - 16] == _EOCD64_LOCATOR:
        (eocd64_pos,) = struct.unpack_from("<Q", tail, at - 20 + 8)
        if 0 <= eocd64_pos < size - 56:
            handle.seek(eocd64_pos)
            rec = handle.read(56)
            if rec[:4] == _EOCD64:
                count, cd_size, cd_offset = struct.unpack_from("<QQQ", rec, 32)
                # the ZIP64 record and its locator sit between the directory and the EOCD
                # (CPython's zipfile subtracts them too; torch.export's .pt2 files are ZIP64)
                directory_end = eocd_pos - 20 - 56
    # Data prepended to the archive shifts every offset; find the real directory start.
    prefix = 0
    expected_cd = directory_end - cd_size
    if cd_offset != expected_cd and expected_cd >= 0:
        handle.seek(expected_cd)
        if handle.read(4) == _CENTRAL:
            prefix = expected_cd - cd_offset
            if prefix:
                anomalies.append(f"{prefix} bytes of data precede the archive")
    start = cd_offset + prefix
    if start < 0 or start + cd_size > size:
        raise FormatError("central directory lies outside the file")
    # Read the directory in bounded chunks: its declared size is attacker-controlled.
    members: list[ZipMember] = []
    end = min(start + cd_size, size)
    buf = b""
    buf_start = start
    pos = start
    while len(members) < max_members:
        need = pos - buf_start + 46
        if need > len(buf):
            buf, buf_start = _refill(handle, pos, end)
        rel = pos - buf_start
        if rel + 46 > len(buf) or buf[rel : rel + 4] != _CENTRAL:
            break
        fields = struct.unpack_from("<4sHHHHHHIIIHHHHHII", buf, rel)
        flags, method, crc = fields[3], fields[4], fields[7]
        csize, usize = fields[8], fields[9]
        nlen, xlen, clen = fields[10], fields[11], fields[12]
        offset = fields[16]
        entry_len = 46 + nlen + xlen + clen
        if rel + entry_len > len(buf):
            buf, buf_start = _refill(handle, pos, end)
            rel = 0
            if entry_len > len(buf):
                break
        name_raw = buf[rel + 46 : rel + 46 + nlen]
        extra = buf[rel + 46 + nlen : rel + 46 + nlen + xlen]
        usize, csize, offset = _zip64_extra(extra, [usize, csize, offset])
        members.append(
            ZipMember(
                name=_decode_name(name_raw, flags),
                method=method,
                flags=flags,
                crc=crc,
                compressed_size=csize,
                size=usize,
                header_offset=offset + prefix,
            )
        )
        pos += entry_len
    if len(members) < min(count, max_members):
        anomalies.append(
            f"central directory declares {count} members but {len(members)} could be read"
        )
    return ZipArchive(members, count, anomalies, prefix)


_DIRECTORY_CHUNK = 1 << 20


def _refill(handle: IO[bytes], pos: int, end: int) -> tuple[bytes, int]:
    """Up to one chunk of the central directory starting at ``pos`` (and its start)."""
    handle.seek(pos)
    return handle.read(max(0, min(_DIRECTORY_CHUNK, end - pos))), pos


def locate_data(handle: IO[bytes], size: int, member: ZipMember) -> int:
    """The offset of ``member``'s data, checking the local header against the directory."""
    if member.data_offset is not None:
        return member.data_offset
    handle.seek(member.header_offset)
    header = handle.read(30)
    if len(header) < 30 or header[:4] != _LOCAL:
        raise FormatError(f"no local header for {member.name!r} at {member.header_offset}")
    (_, _, flags, method, _, _, _, _, _, nlen, xlen) = struct.unpack("<4sHHHHHIIIHH", header)
    local_name = handle.read(nlen)
    if _decode_name(local_name, flags) != member.name:
        member.anomalies.append(
            f"local header names it {_decode_name(local_name, flags)!r}"
            f" but the central directory names it {member.name!r}"
        )
    if flags != member.flags:
        member.anomalies.append(
            f"general-purpose flags differ (local 0x{flags:04x}, central 0x{member.flags:04x})"
        )
    if member.flags & 0x1:
        member.anomalies.append("marked encrypted (flag bit 0), yet loaders read it as plain")
    if method != member.method:
        member.anomalies.append(
            f"compression method differs (local {method}, central {member.method})"
        )
    data_offset = member.header_offset + 30 + nlen + xlen
    if data_offset + member.compressed_size > size:
        raise FormatError(f"member {member.name!r} extends past the end of the file")
    member.data_offset = data_offset
    return int(data_offset)


def open_member(
    handle: IO[bytes], size: int, member: ZipMember, budget: Budget | None
) -> IO[bytes]:
    """A stream of the member's content (stored members are a seekable window).

    Methods as zipfile reads them (np.load, joblib): stored, deflate, bzip2, lzma, and zstd
    when a zstd decompressor is importable. One compressed stream per member, as zipfile
    reads it (what follows its end is not read). Raises :class:`UnsupportedCompression`
    for any other method.
    """
    start = locate_data(handle, size, member)
    window = cast(IO[bytes], Window(handle, start, member.compressed_size))
    if member.method == 0:
        return window
    if member.method == 14:
        return _open_lzma(window, budget, member)
    kind = {8: "deflate", 12: "bzip2", 93: "zstd"}.get(member.method)
    if kind is None:
        raise UnsupportedCompression(
            f"member {member.name!r} uses unsupported compression"
            f" {METHODS.get(member.method, member.method)}"
        )
    try:
        return open_decompressed(kind, window, budget, member.compressed_size, members=False)
    except LimitExceeded as exc:  # no zstd decompressor installed
        raise UnsupportedCompression(f"member {member.name!r}: {exc.message}") from None


def _open_lzma(window: IO[bytes], budget: Budget | None, member: ZipMember) -> IO[bytes]:
    """A zip LZMA member (APPNOTE 5.8): version (2 bytes), properties size (2), LZMA1
    properties (5: lc/lp/pb byte, dictionary size), then raw LZMA1 data. Hand-parsed like
    zipfile's LZMADecompressor, without its private lzma._decode_filter_properties."""
    import lzma

    header = window.read(4)
    props = window.read(struct.unpack_from("<H", header, 2)[0]) if len(header) == 4 else b""
    if len(props) != 5 or props[0] >= 9 * 5 * 5:
        raise FormatError(f"member {member.name!r} has an invalid LZMA properties header")
    packed = props[0]
    lzma1: dict[str, Any] = {
        "id": lzma.FILTER_LZMA1,
        "lc": packed % 9,
        "lp": packed // 9 % 5,
        "pb": packed // 45,
        "dict_size": int.from_bytes(props[1:5], "little"),
    }

    def make() -> lzma.LZMADecompressor:
        return lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=[lzma1])

    try:
        make()  # invalid properties fail here, as a format error rather than mid-read
    except (lzma.LZMAError, ValueError) as exc:
        raise FormatError(f"member {member.name!r} has invalid LZMA properties: {exc}") from None
    raw = Decompressing(window, make, budget, member.compressed_size, what="lzma data")
    return io.BufferedReader(raw, CHUNK)


def crc_matches(stream: IO[bytes], expected: int, limit: int) -> bool | None:
    """Whether the CRC-32 of a member matches (None if it is larger than ``limit``)."""
    crc = 0
    total = 0
    while True:
        chunk = stream.read(1 << 16)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            return None
        crc = zlib.crc32(chunk, crc)
    return crc == expected
