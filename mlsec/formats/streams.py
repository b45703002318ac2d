"""Bounded byte streams for static parsers: windows on files, decompressors, budgets.

The model parsers read untrusted files that may be huge, truncated or crafted to expand
without end (zip bombs). Everything here reads forward in chunks, never a whole file, and
counts what it produces against a :class:`Budget` (bytes, expansion ratio, time), raising
:class:`LimitExceeded` when one is hit so the caller can report it as a finding.
"""

from __future__ import annotations

import io
import time
import zlib
from collections.abc import Callable
from typing import IO, Any

CHUNK = 1 << 16
# A ratio is only meaningful once some output exists: tiny members compress very well.
RATIO_FLOOR = 16 * 1024**2


class LimitExceeded(Exception):
    """A scan limit was hit; ``limit`` names it (as in ``[limits]`` of the configuration)."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.message = message


class Truncated(Exception):
    """The stream ended before a structure it announced was complete."""


class Budget:
    """Time, opcode and decompressed-byte allowance for one top-level file."""

    def __init__(
        self,
        *,
        timeout: float,
        max_ops: int,
        max_uncompressed: int,
        max_ratio: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.deadline = clock() + timeout
        self.timeout = timeout
        self.ops_left = max_ops
        self.max_ops = max_ops
        self.max_uncompressed = max_uncompressed
        self.max_ratio = max_ratio
        self.uncompressed = 0

    def check_time(self) -> None:
        if self.clock() > self.deadline:
            raise LimitExceeded(
                "file-timeout-seconds",
                f"scanning took longer than {self.timeout:g} s (limits.file-timeout-seconds)",
            )

    def spend_ops(self, n: int) -> None:
        self.ops_left -= n
        if self.ops_left < 0:
            raise LimitExceeded(
                "max-pickle-ops",
                f"more than {self.max_ops} pickle opcodes (limits.max-pickle-ops)",
            )
        self.check_time()

    def spend_output(self, n: int) -> None:
        self.uncompressed += n
        if self.uncompressed > self.max_uncompressed:
            raise LimitExceeded(
                "max-uncompressed-size",
                f"decompressed data exceeds {self.max_uncompressed} bytes"
                " (limits.max-uncompressed-size)",
            )


class Window(io.RawIOBase):
    """A read-only, seekable view of ``length`` bytes at ``start`` of a seekable file."""

    def __init__(self, handle: IO[bytes], start: int, length: int) -> None:
        super().__init__()
        self._handle = handle
        self._start = start
        self._length = max(0, length)
        self._pos = 0

    @property
    def size(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            pos = offset
        elif whence == 1:
            pos = self._pos + offset
        else:
            pos = self._length + offset
        self._pos = max(0, pos)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._length - self._pos)
        if want <= 0:
            return 0
        self._handle.seek(self._start + self._pos)
        data = self._handle.read(want)  # read(), not readinto(): spooled files lack it on 3.10
        got = len(data)
        view[:got] = data
        self._pos += got
        return got


# Kinds whose readers (gzip, bz2, lzma, lz4.frame, zstd: CPython's
# ``_compression.DecompressReader`` and ``gzip._GzipReader``) read on through every member
# or stream concatenated in one file. zlib, raw deflate and zip members end at their end.
CONCATENATED = frozenset({"gzip", "bzip2", "xz", "lzma", "lz4", "zstd"})
_GZIP_MAGIC = b"\x1f\x8b"


class Decompressing(io.RawIOBase):
    """Forward-only decompression of a compressed stream, counted against a budget.

    ``make`` returns an object with ``decompress(data, max_length)``, ``unconsumed_tail``
    (zlib) or ``needs_input`` (bz2/lzma), ``eof`` and ``unused_data``. Output is capped by
    the budget and by the expansion ratio against ``compressed_size`` (when known).
    ``kind`` in :data:`CONCATENATED` (and ``members``): after one member ends, the next one
    is read as its loaders read it, within the same budget. Like CPython's readers, zero
    padding after a gzip member is skipped; bytes that start no further member or stream end
    the content (loaders have read everything before them by then).
    """

    def __init__(
        self,
        source: IO[bytes],
        make: Callable[[], Any],
        budget: Budget | None,
        compressed_size: int | None = None,
        what: str = "stream",
        kind: str | None = None,
    ) -> None:
        super().__init__()
        self._source = source
        self._make = make
        self._dec = make()
        self._budget = budget
        self._compressed = compressed_size
        self._what = what
        self._kind = kind
        self._members = kind in CONCATENATED
        self._carry = b""  # input read but not yet given to the current decompressor
        self._tolerant = False  # the next decompress starts a stream after the first one
        self._pending = b""
        self._produced = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def _guard(self, n: int) -> None:
        self._produced += n
        if self._budget is None:
            return
        self._budget.spend_output(n)
        if (
            self._compressed is not None
            and self._produced > RATIO_FLOOR
            and self._produced > self._budget.max_ratio * max(self._compressed, 1)
        ):
            raise LimitExceeded(
                "max-expansion-ratio",
                f"{self._what} expands more than {self._budget.max_ratio} times"
                " (limits.max-expansion-ratio); a decompression bomb?",
            )

    def readinto(self, buffer: Any) -> int:
        try:
            return self._readinto(buffer)
        except (LimitExceeded, Truncated):
            raise
        except Exception as exc:  # zlib.error, lzma.LZMAError, OSError, lz4's RuntimeError
            raise Truncated(f"{self._what} is corrupt: {exc}") from None

    def _take(self) -> bytes:
        if self._carry:
            data, self._carry = self._carry, b""
            return data
        return self._source.read(CHUNK)

    def _next_member(self) -> bool:
        """Start a decompressor on what follows the member that ended; False at the end."""
        if not self._members:
            return False
        rest = bytes(getattr(self._dec, "unused_data", None) or b"") + self._carry
        gzip = self._kind == "gzip"
        while True:
            if gzip:  # gzip._GzipReader skips zero padding between and after members
                rest = rest.lstrip(b"\x00")
            if len(rest) >= 2 or (rest and not gzip):
                break
            more = self._source.read(CHUNK)
            if not more:
                break
            rest += more
            if self._budget is not None:
                self._budget.check_time()
        if not rest:
            return False
        if gzip and rest[:2] != _GZIP_MAGIC:
            # Python's gzip reader raises only on reaching these bytes, after returning every
            # member before them: pickle.load() has unpickled those by then. End here, so
            # exactly what a loader reads is scanned (never an error that hides it).
            return False
        if self._budget is not None:
            self._budget.check_time()  # many empty members cost time, not output
        self._dec = self._make()
        self._carry = rest
        self._tolerant = not gzip
        return True

    def _readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = len(view)
        if self._pending:
            out, self._pending = self._pending[:want], self._pending[want:]
            view[: len(out)] = out
            return len(out)
        out = b""
        while not out and not self._eof:
            if self._dec.eof:
                self._eof = not self._next_member()
                continue
            if hasattr(self._dec, "unconsumed_tail"):
                data = self._dec.unconsumed_tail or self._take()
                if not data:
                    out = self._dec.flush()
                    self._eof = True
                    break
            elif self._dec.needs_input:
                data = self._take()
                if not data:
                    self._eof = True
                    break
            else:
                data = b""
            tolerant, self._tolerant = self._tolerant, False
            try:
                out = self._dec.decompress(data, want)
            except EOFError:
                self._eof = True
                break
            except Exception:
                if tolerant:  # trailing bytes that start no stream: loaders ignore them
                    self._eof = True
                    break
                raise
        n = len(out)
        if n > want:  # flush() may return more than asked; keep the rest
            self._pending = out[want:]
            out = out[:want]
            n = want
        self._guard(n)
        view[:n] = out
        return n


def open_decompressed(
    kind: str,
    source: IO[bytes],
    budget: Budget | None,
    compressed_size: int | None = None,
    *,
    members: bool = True,
) -> IO[bytes]:
    """A forward-only reader of the decompressed content of ``source``.

    ``kind``: gzip, bzip2, xz, lzma (raw "alone" format), zlib, deflate (raw), lz4 (frame),
    zstd (with the standard library's ``compression.zstd`` on Python 3.14, else the optional
    ``zstandard`` package; without either, :class:`LimitExceeded` says it was not checked).
    ``members``: read on through concatenated members/streams as the kind's readers do
    (see :class:`Decompressing`); False for a zip member, which ends at its first end.
    """
    import bz2
    import lzma

    makers: dict[str, Callable[[], Any]] = {
        "gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
        "zlib": lambda: zlib.decompressobj(zlib.MAX_WBITS),
        "deflate": lambda: zlib.decompressobj(-zlib.MAX_WBITS),
        "bzip2": bz2.BZ2Decompressor,
        "xz": lambda: lzma.LZMADecompressor(format=lzma.FORMAT_XZ),
        "lzma": lambda: lzma.LZMADecompressor(format=lzma.FORMAT_ALONE),
    }
    if kind == "lz4":
        try:
            import lz4.frame  # optional: only needed for joblib's lz4 compression
        except ImportError as exc:
            raise LimitExceeded("lz4", "lz4 is not installed; cannot decompress") from exc
        makers["lz4"] = lz4.frame.LZ4FrameDecompressor
    if kind == "zstd":
        makers["zstd"] = _zstd_maker()
    raw = Decompressing(
        source,
        makers[kind],
        budget,
        compressed_size,
        what=f"{kind} data",
        kind=kind if members else None,
    )
    return io.BufferedReader(raw, CHUNK)


def _zstd_maker() -> Callable[[], Any]:
    try:
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]

        return zstd.ZstdDecompressor  # type: ignore[no-any-return,unused-ignore]
    except ImportError:
        pass
    try:
        import zstandard
    except ImportError as exc:
        raise LimitExceeded("zstd", "zstandard is not installed; cannot decompress") from exc
    return lambda: _ZstandardObj(zstandard.ZstdDecompressor().decompressobj())


class _ZstandardObj:
    """zstandard's decompressobj behind the bounded ``decompress(data, max_length)`` interface
    of the standard library's decompressors. Its own ``decompress`` returns everything the
    input yields, so input is fed in small pieces: one piece expands to a few MiB at most."""

    PIECE = 256

    def __init__(self, obj: Any) -> None:
        self._obj = obj
        self._input = b""
        self._surplus = b""
        self._ended = False

    @property
    def eof(self) -> bool:  # like lzma's: only once all output has been returned
        return self._ended and not self._surplus

    @property
    def needs_input(self) -> bool:
        return not self._input and not self._surplus and not self._ended

    @property
    def unused_data(self) -> bytes:  # what follows the frame (the next frame, if any)
        return bytes(getattr(self._obj, "unused_data", None) or b"") + self._input

    def decompress(self, data: bytes, max_length: int) -> bytes:
        self._input += data
        while len(self._surplus) < max_length and self._input and not self._ended:
            piece, self._input = self._input[: self.PIECE], self._input[self.PIECE :]
            self._surplus += self._obj.decompress(piece)
            self._ended = bool(getattr(self._obj, "eof", False))
        out, self._surplus = self._surplus[:max_length], self._surplus[max_length:]
        return out


class ByteReader:
    """Buffered forward reader with cheap skipping, for opcode-level parsers.

    ``skip`` seeks when the source can (payloads of a plain file are never read) and reads
    and discards otherwise. ``size`` (if known) lets skips past the end fail at once.
    """

    __slots__ = ("_base", "_buf", "_i", "_origin", "_raw", "_seekable", "_size")

    def __init__(self, raw: IO[bytes], size: int | None = None, origin: int = 0) -> None:
        self._raw = raw
        self._buf = b""
        self._i = 0
        self._origin = origin  # position of raw at construction (offsets are relative to it)
        self._base = 0
        try:
            self._seekable = bool(raw.seekable())
        except (OSError, ValueError, AttributeError):
            self._seekable = False
        self._size = size

    @property
    def raw(self) -> IO[bytes]:
        return self._raw

    @property
    def seekable(self) -> bool:
        return self._seekable

    @property
    def size(self) -> int | None:
        return self._size

    @property
    def origin(self) -> int:
        return self._origin

    def tell(self) -> int:
        return self._base + self._i

    def _fill(self, n: int) -> bool:
        """Make at least ``n`` bytes available; False if the stream ends first."""
        avail = len(self._buf) - self._i
        if avail >= n:
            return True
        parts = [self._buf[self._i :]]
        self._base += self._i
        self._i = 0
        while avail < n:
            chunk = self._raw.read(max(CHUNK, n - avail))
            if not chunk:
                self._buf = b"".join(parts)
                return False
            parts.append(chunk)
            avail += len(chunk)
        self._buf = b"".join(parts)
        return True

    def at_eof(self) -> bool:
        return not self._fill(1)

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return self._buf[self._i : self._i + n]

    def byte(self) -> int:
        i = self._i
        if i < len(self._buf):
            self._i = i + 1
            return self._buf[i]
        if not self._fill(1):
            return -1
        self._i += 1
        return self._buf[self._i - 1]

    def read(self, n: int) -> bytes:
        i = self._i
        j = i + n
        if j <= len(self._buf):  # fast path: the bytes are buffered
            self._i = j
            return self._buf[i:j]
        if not self._fill(n):
            raise Truncated(f"stream ends inside a {n}-byte field")
        i = self._i
        self._i = i + n
        return self._buf[i : i + n]

    def readline(self, limit: int = 1 << 16) -> bytes:
        while True:
            j = self._buf.find(b"\n", self._i)
            if j >= 0:
                line = self._buf[self._i : j]
                self._i = j + 1
                return line
            avail = len(self._buf) - self._i
            if avail > limit:
                raise Truncated(f"text argument longer than {limit} bytes")
            if not self._fill(avail + 1):
                raise Truncated("stream ends inside a text argument")

    def readline_or_skip(self, keep: int) -> bytes | None:
        """The next line if it is at most ``keep`` bytes; else consume it and return None."""
        try:
            return self.readline(keep)
        except Truncated:
            if not self._fill(keep + 1):
                raise
        # A long line: drop what is buffered and search forward chunk by chunk.
        while True:
            j = self._buf.find(b"\n", self._i)
            if j >= 0:
                self._i = j + 1
                return None
            self._base += len(self._buf)
            self._buf = b""
            self._i = 0
            if not self._fill(1):
                raise Truncated("stream ends inside a text argument")

    def skip(self, n: int) -> None:
        avail = len(self._buf) - self._i
        if n <= avail:
            self._i += n
            return
        rest = n - avail
        self._base += len(self._buf)
        self._buf = b""
        self._i = 0
        if self._seekable:
            if self._size is not None and self._base + rest > self._size:
                self._base = self._size
                raise Truncated(f"stream ends inside a {n}-byte payload")
            self._raw.seek(rest, 1)
            self._base += rest
            return
        while rest > 0:
            chunk = self._raw.read(min(rest, 1 << 20))
            if not chunk:
                raise Truncated(f"stream ends inside a {n}-byte payload")
            rest -= len(chunk)
            self._base += len(chunk)

    def read_range(self, start: int, length: int) -> bytes | None:
        """Bytes ``[start, start+length)`` of the stream if it can seek back, else None.

        Leaves the current position unchanged (used to scan payloads after the fact).
        """
        if not self._seekable:
            return None
        here = self._raw.tell()
        try:
            self._raw.seek(self._origin + start)
            data = self._raw.read(length)
        finally:
            self._raw.seek(here)
        return data if len(data) == length else None
