"""Is this a pickle? A bounded decode of a file's first opcodes, not a guess from its name.

Protocol 0 and 1 pickles have no magic number, and names say little (``.pth.tar``, ``.th``,
``.pdparams``, none at all), so any file no other format claims is probed: its first bytes
(the head the walker read, at most :data:`~mlsec.models.sniff.HEAD_SIZE`) run through the
same opcode machine as the full scan (:mod:`mlsec.formats.pickle`), which checks every
argument and the stack and MARK discipline as CPython's unpickler does. The file counts as a
pickle when that prefix decodes with no structural error:

- an object built from an import (its BUILD: containers such as joblib write raw
  bytes behind it, which the full scan skips as their loaders do);
- a complete pickle (STOP) of at least :data:`MIN_OPS` opcodes, or one ending the file, or
  a shorter one and the next program the file goes on with (loaders read on);
- or its first import names dotted identifiers (CPython imports it right there: a first
  import no module could have ends the load), or :data:`MIN_VALID_BEFORE_ERROR` opcodes
  decode before the first error (a pickle that breaks later: the scan reports it);
- or the head ends inside a valid prefix while the file goes on (a long argument, a big
  frame: the full scan reads on, seeking over payloads), after PROTO and one more opcode or
  after :data:`MIN_PREFIX_OPS` opcodes;
- or the whole file is a valid prefix of :data:`MIN_BROKEN_OPS` opcodes or more that ends
  before STOP (a truncated pickle: reported as corrupt under a pickle name).

Text and binary files that merely start with a byte that is also an opcode (an IDL ``.sav``,
a Fortran ``.dat`` starting with ``(``, a CSV, prose starting with ``c`` or ``]``) fail within
a few opcodes: a line that is no number, an unquoted string, a missing MARK, an invalid byte.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlsec.formats.streams import ByteReader

if TYPE_CHECKING:
    from mlsec.formats.pickle import Machine

# Opcodes CPython's unpickler accepts on an empty stack (so a pickle can start with them):
# PROTO, FRAME, MARK and the opcodes that push a constant or an import (EXT1/2/4 included:
# a loader's process may have registered extension codes). Not PERSID/BINPERSID (needs a
# loader hook), NEXT_BUFFER (needs out-of-band buffers) or GET (the memo is empty). A quick
# first filter only: the decode below decides.
# Not EXT1/2/4 (0x82-0x84): an extension code needs a copyreg registration no default
# interpreter has, so a pickle cannot start with one and load; raw tensor bytes often do.
FIRST_OPCODES = frozenset(
    b"(IJKLMSTUBCNVXFG])}c"
    + bytes([0x80, 0x95, 0x8A, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x88, 0x89])
    + bytes([0x96])
)
_EXT = frozenset([0x82, 0x83, 0x84])
MIN_OPS = 3  # a complete pickle shorter than this must end the file ("N." at the start of prose)
MIN_BROKEN_OPS = 4
MIN_VALID_BEFORE_ERROR = 8
MIN_PREFIX_OPS = 4
PROBE_LIMIT = 1 << 20  # how far the probe reads when the head ends inside the first arguments
_DOTTED = re.compile(r"^[^\W\d]\w*(?:\.[^\W\d]\w*)*\Z")
# Loose byte-level forms of the same (the decode checks exactly): identifiers may be
# non-ASCII UTF-8; numbers as int() and float() read them, with LONG's "L" suffix.
_DOTTED_BYTES = re.compile(
    rb"^(?:[A-Za-z_]|[\x80-\xff])[\w\x80-\xff]*(?:\.(?:[A-Za-z_]|[\x80-\xff])[\w\x80-\xff]*)*\r?\Z"
)
_INT_LINE = re.compile(rb"^\s*[-+]?\d[\d_]*L?\s*\Z")
_FLOAT_LINE = re.compile(
    rb"^\s*[-+]?(?:[\d_.]+(?:[eE][-+]?\d+)?|inf|infinity|nan)\s*\Z", re.IGNORECASE
)


class _Enough(Exception):
    """The prefix has shown enough structure (an object built from an import)."""


def _stop(obj: Any, reader: ByteReader, machine: Machine) -> None:
    # Stop at the first BUILD of an object an import made: containers write raw bytes behind
    # it (joblib's arrays), which only their own loader knows how to skip; the full scan
    # does. A BUILD before any import (``]Nb``: a list given no state, which CPython accepts)
    # is followed by opcodes for every loader: the decode goes on to the first import.
    if machine.result.imports:
        raise _Enough


class _HeadReader(ByteReader):
    """A reader over the head that remembers whether a decode ran off its end."""

    __slots__ = ("exhausted",)

    def __init__(self, head: bytes) -> None:
        # No size: payloads longer than the head are "skipped" past its end, and the next
        # read marks the head as exhausted instead of failing as a truncated file.
        super().__init__(io.BytesIO(head), None)
        self.exhausted = False

    def _fill(self, n: int) -> bool:
        ok = super()._fill(n)
        if not ok:
            self.exhausted = True
        return ok


# Every opcode byte of protocols 0-5 (pickletools.opcodes; a test keeps them equal).
_OPCODES = frozenset(
    b"(.012FGIJKLMNPQRSTUVXabcdeghijlopqrstu})]" + bytes([0x42, 0x43]) + bytes(range(0x80, 0x99))
)
# Fixed-size arguments of the opcodes a pickle can start with (the line-argument ones, and
# those with a length prefix, are read below).
_FIXED = {
    ord("J"): 4,
    ord("K"): 1,
    ord("M"): 2,
    ord("G"): 8,
    0x80: 1,
    0x95: 8,
    0x82: 1,
    0x83: 2,
    0x84: 4,
}
_LENGTH = {ord("C"): 1, ord("U"): 1, 0x8C: 1, ord("T"): 4, ord("B"): 4, ord("X"): 4}
_LINE = frozenset(b"ILFSVc")
_NO_ARGUMENT = frozenset(b"(])}N") | frozenset([0x88, 0x89, 0x8F])


def _second_opcode_plausible(head: bytes, size: int | None) -> bool:
    """A cheap first filter: the first opcode's argument is well formed and fits in the file
    (``size`` bytes, if known), and what follows it is an opcode the stack allows. Most prose
    fails here, before the decode."""
    code = head[0]
    at = 1
    if code in _FIXED:
        at += _FIXED[code]
    elif code in _LENGTH:
        width = _LENGTH[code]
        at += width + int.from_bytes(head[1 : 1 + width], "little")
        if size is not None and at > size:
            return False  # an argument longer than the file: CPython stops, truncated
    elif code in _LINE:
        end = head.find(b"\n", 1)
        if end < 0:  # a first line longer than the head: the decode decides
            return size is None or size > len(head)
        line = head[1:end]
        if code == ord("c"):
            name_end = head.find(b"\n", end + 1)
            if not _DOTTED_BYTES.match(line):
                return False
            if name_end < 0:
                return size is None or size > len(head)
            if not _DOTTED_BYTES.match(head[end + 1 : name_end]):
                return False
            end = name_end
        elif code in b"ILF":
            common = _FLOAT_LINE if code == ord("F") else _INT_LINE
            # the common forms, else as the decode reads them (hex, octal and binary
            # integers, a NUL that ends C's reading...), as the unpicklers do
            if not common.match(line) and not _number_line(code, line):
                return False
        elif code == ord("S") and not (
            len(line) >= 2 and line[:1] in b"'\"" and line[-1:] == line[:1]
        ):
            return False
        at = end + 1
    elif code not in _NO_ARGUMENT:
        return True  # LONG1/4, BINUNICODE8, BINBYTES8, BYTEARRAY8: the decode decides
    if size is not None and at >= size:
        return False  # one opcode is the whole file: no pickle ("VALUE = 1" in a .py)
    if at >= len(head):
        return True
    second = head[at]
    if second not in _OPCODES:
        return False
    if code == 0x80 or code == 0x95:  # PROTO, FRAME: nothing on the stack yet
        return second in FIRST_OPCODES or second in _EXT  # after PROTO 2+ pickle writes EXT
    if code == ord("("):  # a MARK and nothing else
        return second not in _NEEDS_TWO and second not in _NEEDS_ITEM_ABOVE_MARK
    return second not in _NEEDS_MARK and second not in _NEEDS_TWO


def _number_line(code: int, line: bytes) -> bool:
    """Whether INT, LONG or FLOAT (``code``) reads ``line`` as the decoder does."""
    from mlsec.formats.pickle import c_float, c_int, c_long

    parse = c_int if code == ord("I") else c_long if code == ord("L") else c_float
    try:
        parse(line.decode("latin-1"))
    except ValueError:
        return False
    return True


# Opcodes that pop to a MARK (failing without one), and those that need two stack items.
_NEEDS_MARK = frozenset(b"eultdoi1") | frozenset([0x90, 0x91])
_NEEDS_TWO = frozenset(b"asbR") | frozenset([0x81, 0x86, 0x87, 0x92, 0x93])
# With only a MARK on the stack, these pop it as an item (CPython: "unexpected MARK"). Not
# POP: with nothing above the MARK it discards the MARK (load_pop), so "(0" starts a pickle.
_NEEDS_ITEM_ABOVE_MARK = frozenset(b"2pqrQ") | frozenset([0x85, 0x94, 0x98, 0x97])


def looks_like_pickle(
    head: bytes,
    complete: bool,
    size: int | None = None,
    more: Callable[[int], bytes] | None = None,
) -> bool:
    """Whether ``head`` (the first bytes of a file of ``size`` bytes if known; all of it if
    ``complete``) starts a pickle CPython would accept.

    ``more(n)`` returns up to the first ``n`` bytes of the file: asked for when the head ends
    inside the first arguments (a protocol 0 string longer than the head), so padding in
    front of a payload does not hide it. Without it, or past :data:`PROBE_LIMIT`, such a
    prefix counts as a pickle (the full scan then decides).
    """
    if complete:
        size = len(head)
    if not head or head[0] not in FIRST_OPCODES or not _second_opcode_plausible(head, size):
        return False
    verdict = _decode(head, size)
    if verdict is None and more is not None:
        longer = more(PROBE_LIMIT)
        if len(longer) > len(head):
            if len(longer) < PROBE_LIMIT:
                size = len(longer)
            verdict = _decode(longer, size)
    return True if verdict is None else verdict


def _decode(head: bytes, size: int | None, programs: int = 0) -> bool | None:
    """The verdict on ``head`` (the file's first bytes; ``size``: the file's, if known), or
    None when the head ends inside a valid prefix too short to judge. ``programs``: short
    complete programs read before it (see _next_program)."""
    if head[0] == 0x80 and len(head) > _BINARY_PREFIX and _binary_prefix_is_enough(head):
        return True
    return _decode_head(head, size, programs)


MAX_SHORT_PROGRAMS = 8  # clean short programs back to back that make a pickle by themselves


def _next_program(head: bytes, end: int, size: int | None, programs: int) -> bool | None:
    """The verdict after a clean program too short to tell alone (``N.``, a LONG1 magic
    number with no PROTO) that ends at ``head[end]`` while the file goes on: loaders that
    read on run what follows (torch's legacy format reads four programs, and a stream of
    pickles is read with pickle.load again), so the next program decides."""
    rest = head[end:]
    if size is not None:
        size -= end
    if not rest:
        return None  # the head ends there: a longer read tells
    if programs + 1 >= MAX_SHORT_PROGRAMS:
        return True  # short programs back to back: structure enough
    if rest[0] not in FIRST_OPCODES or not _second_opcode_plausible(rest, size):
        return False
    return _decode(rest, size, programs + 1)


# The first 256 bytes of a binary pickle (PROTO 2+ first) are decoded before the whole head:
# when they settle it as a pickle, that is the verdict. The head's decode could then only say
# "not a pickle" for a first import whose full name turns out not importable, or for a first
# import found later, after enough clean opcodes: the prefix's verdict is the same or the
# cautious one (the file is analysed), and a PROTO header is no prose that happens to decode.
# A small state-dict pickle's probe: 59 -> 39 us (`python benchmarks/bench_scale.py --cases
# small-models` generates such files).
_BINARY_PREFIX = 256


def _probe_machine(reader: _HeadReader) -> Machine:
    """A machine for the probe's decode, stopping at the first BUILD of what an import made
    (:func:`_stop`). (A head is far shorter than Machine.RUN_WARMUP opcodes, so runs of
    constants are not learnt; a decode read on to PROBE_LIMIT may reach it: runs do exactly
    what the opcodes do.)"""
    from mlsec.formats.pickle import Machine, PickleHooks
    from mlsec.formats.streams import Budget

    budget = Budget(timeout=5.0, max_ops=1 << 30, max_uncompressed=0, max_ratio=1)
    return Machine(reader, budget, PickleHooks(after_build=_stop))


def prepare_probe() -> None:
    """Import what the probe's decode needs (it imports lazily: most files are no pickle)."""
    import mlsec.formats.pickle  # noqa: F401


def _binary_prefix_is_enough(head: bytes) -> bool:
    if not 2 <= head[1] <= 5:  # PROTO's argument: a protocol CPython reads
        return False
    reader = _HeadReader(head[:_BINARY_PREFIX])
    machine = _probe_machine(reader)
    try:
        res = machine.run()
    except _Enough:
        res = machine.result
    if res.frame_split is not None:
        return True  # see _decode_head
    if res.imports:
        return _importable(res.imports[0])
    return reader.exhausted and res.ops > MIN_VALID_BEFORE_ERROR


def _decode_head(head: bytes, size: int | None, programs: int = 0) -> bool | None:
    """:func:`_decode` from the whole head."""
    complete = size is not None and len(head) >= size
    reader = _HeadReader(head)
    machine = _probe_machine(reader)
    try:
        res = machine.run()
    except _Enough:
        res = machine.result
        return res.frame_split is not None or _importable(res.imports[0])
    if res.frame_split is not None:
        # An opcode crosses the end of its FRAME: loaders reading a file object (pickle.load,
        # torch.load) read another program than this decode from memory (whatever breaks or
        # is imported here); the full scan decodes both.
        return True
    if res.imports:
        # CPython resolves an import as it reads it: a first import that names no importable
        # module (``lass Foo:`` from prose, a path from a CSV) ends the load there. One that
        # does is a pickle, whatever breaks after it (the scan reports that).
        return _importable(res.imports[0])
    if res.error is None:
        if res.ops >= MIN_OPS or (complete and res.end == len(head)):
            return True
        return res.end is not None and _next_program(head, res.end, size, programs)
    if not reader.exhausted:
        # A structural error inside the head: a pickle only if enough opcodes decoded first.
        return res.ops - 1 >= MIN_VALID_BEFORE_ERROR
    if complete or (size is not None and reader.tell() >= size):
        # The file itself ends inside (an argument longer than the file, a missing STOP).
        return res.ops >= MIN_BROKEN_OPS
    # The head ends inside a valid prefix and the file goes on: after PROTO or a few opcodes
    # that is structure enough; otherwise the head was too short to tell.
    if res.ops >= MIN_PREFIX_OPS or (head[0] == 0x80 and res.ops >= 2):
        return True
    return None


def _importable(imp: Any) -> bool:
    """An import CPython could resolve: dotted identifiers (``lass Foo:`` from prose is not).

    One the decoder could not resolve statically (an extension code, names computed on the
    stack) is given the benefit of the doubt: the scan judges it.
    """
    module, name = getattr(imp, "module", None), getattr(imp, "name", None)
    if not isinstance(module, str) or not isinstance(name, str):
        return True
    return bool(_DOTTED.match(module)) and bool(_DOTTED.match(name))
