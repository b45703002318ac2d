"""Is this a pickle? A bounded decode of a file's first opcodes, not a guess from its name.

Protocol 0 and 1 pickles have no magic number, and names say little (``.pth.tar``, ``.th``,
``.pdparams``, none at all), so any file no other format claims is probed: its first bytes
(the head the walker read, at most :data:`~mlsec.models.sniff.HEAD_SIZE`) run through the
same opcode machine as the full scan (:mod:`mlsec.formats.pickle`), which checks every
argument and the stack and MARK discipline as CPython's unpickler does. The file counts as a
pickle when that prefix decodes with no structural error:

- an object built from an import (the first BUILD: containers such as joblib write raw
  bytes behind it, which the full scan skips as their loaders do);
- a complete pickle (STOP) of at least :data:`MIN_OPS` opcodes, or one ending the file;
- or an import of dotted identifiers decodes, or :data:`MIN_VALID_BEFORE_ERROR` opcodes
  decode before the first error (a pickle that breaks later: the scan reports it);
- or the head ends inside a valid prefix while the file goes on (a long argument, a big
  frame: the full scan reads on, seeking over payloads), after at least two opcodes or
  inside a first argument longer than the head;
- or the whole file is a valid prefix of :data:`MIN_BROKEN_OPS` opcodes or more that ends
  before STOP (a truncated pickle: reported as corrupt under a pickle name).

Text and binary files that merely start with a byte that is also an opcode (an IDL ``.sav``,
a Fortran ``.dat`` starting with ``(``, a CSV, prose starting with ``c`` or ``]``) fail within
a few opcodes: a line that is no number, an unquoted string, a missing MARK, an invalid byte.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

from mlsec.formats.streams import ByteReader

if TYPE_CHECKING:
    from mlsec.formats.pickle import Machine

# Opcodes CPython's unpickler accepts on an empty stack (so a pickle can start with them):
# PROTO, FRAME, MARK and the opcodes that push a constant or an import. Not EXT1/2/4 (no
# extension codes are registered by default), PERSID/BINPERSID (needs a loader hook),
# NEXT_BUFFER (needs out-of-band buffers) or GET (the memo is empty). A quick first filter
# only: the decode below decides.
FIRST_OPCODES = frozenset(
    b"(IJKLMSTUBCNVXFG])}c"
    + bytes([0x80, 0x95, 0x8A, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x88, 0x89])
    + bytes([0x96])
)
MIN_OPS = 3  # a complete pickle shorter than this must end the file ("N." at the start of prose)
MIN_BROKEN_OPS = 4
MIN_VALID_BEFORE_ERROR = 6
_DOTTED = re.compile(r"^[^\W\d]\w*(?:\.[^\W\d]\w*)*\Z")


class _Enough(Exception):
    """The prefix has shown enough structure (an object built from an import)."""


def _stop(obj: Any, reader: ByteReader, machine: Machine) -> None:
    # Stop at the first BUILD: containers write raw bytes behind it (joblib's arrays), which
    # only their own loader knows how to skip; the full scan does.
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


def looks_like_pickle(head: bytes, complete: bool) -> bool:
    """Whether ``head`` (the first bytes of a file; all of it if ``complete``) starts a pickle
    CPython would accept."""
    if not head or head[0] not in FIRST_OPCODES:
        return False
    from mlsec.formats.pickle import PickleHooks, run_pickle
    from mlsec.formats.streams import Budget

    reader = _HeadReader(head)
    budget = Budget(timeout=5.0, max_ops=1 << 30, max_uncompressed=0, max_ratio=1)
    try:
        res = run_pickle(reader, budget, PickleHooks(after_build=_stop))
    except _Enough:
        return True
    if res.error is None:
        return res.ops >= MIN_OPS or (complete and res.end == len(head))
    if any(_importable(imp) for imp in res.imports):
        return True  # a well-formed import decoded: what breaks after it is the scan's to report
    if not reader.exhausted:
        # A structural error inside the head: a pickle only if enough opcodes decoded first.
        return res.ops - 1 >= MIN_VALID_BEFORE_ERROR
    if complete:
        return res.ops >= MIN_BROKEN_OPS
    return res.ops >= 2 or (res.error_offset is not None and res.error_offset <= 1)


def _importable(imp: Any) -> bool:
    """An import CPython could resolve: dotted identifiers (``lass Foo:`` from prose is not)."""
    module, name = getattr(imp, "module", None), getattr(imp, "name", None)
    return (
        isinstance(module, str)
        and isinstance(name, str)
        and bool(_DOTTED.match(module))
        and bool(_DOTTED.match(name))
    )
