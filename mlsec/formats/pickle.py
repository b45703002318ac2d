"""Static pickle analysis: walk every opcode of protocols 0-5 without unpickling anything.

The standard library's :mod:`pickletools` describes the opcodes (their table is mirrored in
:data:`OPCODE_NAMES`) but its ``genops`` reads every
argument into memory (a 4 GiB ``BINBYTES8`` payload included) and stops at the first error.
This module decodes opcodes itself over a :class:`~mlsec.formats.streams.ByteReader`: payloads
larger than :data:`KEEP_BYTES` are skipped (seeked over in files), and a small symbolic
machine tracks the stack and memo so every import (GLOBAL, STACK_GLOBAL, INST) and every call
(REDUCE, OBJ, NEWOBJ, NEWOBJ_EX, INST) is resolved to a module and name even when the names
travel through MEMOIZE/PUT/GET, DUP or POP. Nothing is ever imported or called.

Container formats plug in through :class:`PickleHooks` (joblib writes raw array bytes in the
middle of its pickle stream; the hook skips them exactly like joblib's unpickler reads them).

A pickle of many small objects is millions of records of one layout; decoded opcode by
opcode in Python it runs at a few million opcodes a second. The machine learns such layouts
from the bytes (:class:`_Run`) and applies a whole batch of records with C-level matching and
unpacking, with exactly the effect of the opcodes one by one (the differential tests in
tests/models_pickle/test_runs.py hold it to that, cap by cap); anything else, and any record
that does not fit its layout, goes opcode by opcode.
"""

from __future__ import annotations

import codecs
import io
import re
import struct
from collections import deque
from collections.abc import Callable
from itertools import chain, repeat
from operator import add, itemgetter, methodcaller
from typing import Any, NamedTuple, cast

from mlsec.formats.streams import Budget, ByteReader, LimitExceeded, Truncated
from mlsec.records import Slotted

KEEP_BYTES = 1 << 20  # payloads up to this size are kept (rendering, nested pickles)
MAX_ITEMS = 256  # items kept per container (enough to render and to read small states)
MAX_STACK = 1_000_000
MAX_MEMO = 300_000
MAX_MEMO_NAMES = 1_000_000
MAX_MEMO_STRUCTURED = 20_000  # memoized containers/calls kept as values (memory bound)
# Memoized text longer than a name is kept only up to this many characters in all: a pickle
# of millions of records memoizes every string (4 GiB of them in the many-objects case of
# benchmarks/bench_scale.py), and only names (module, attribute) are needed back from the
# memo. A dropped entry read back is opaque, so a name hidden in one is unresolved (high).
LONG_TEXT = 256
MAX_MEMO_LONG_TEXT = 32 * 1024 * 1024
OPS_PER_CHECK = 4096
# Runs of constants between a MARK and the SETITEMS/APPENDS that closes it (the fields of a
# record, a batch of list items) are decoded a whole run at a time when their layout repeats
# (see _Run): at most this many opcodes per run, text fields up to this many bytes.
MAX_RUN_OPS = 4096
MAX_RUN_TEXT = 1 << 16
RUN_CACHE = 4  # layouts kept (most recent first)
# runs matched at once at most: re's matcher keeps about 100 bytes a repetition until the
# match ends (a 4 MiB buffer of 5-byte records took 49 MB), this bounds it to a few MB
RUN_BATCH = 1 << 16
RUN_CACHED_PATTERN = 4096  # bytes of a layout's pattern that re's own cache may keep
RUN_READAHEAD = 4 << 20  # bytes of a file buffered at once where runs meet the buffer's end
RUN_CALL_COST = 16  # what trying runs once costs, in opcodes decoded one by one
RUN_COMPILE_COST = 400  # what learning a layout costs, besides its opcodes
RUN_MAX_WAIT = 1024
RUN_CREDIT = 50_000  # work (in opcodes) runs may cost before they pay for themselves (~15 ms)
RUN_SHARE = 2  # and a 1 / 2**RUN_SHARE of the opcodes decoded (a quarter)
RUN_WASTE_SHARE = 3  # matching a run costs about an eighth of decoding its opcodes

# Callables that deserialize their argument again: the bytes they receive are scanned too.
NESTED_LOADERS = frozenset(
    {
        "torch.storage._load_from_bytes",
        "torch.serialization._load_from_bytes",
        "joblib.numpy_pickle.load",
        "sklearn.externals.joblib.load",
        "sklearn.externals.joblib.numpy_pickle.load",
        "pickle._loads",
        "pickle.Unpickler",
        "pickle._Unpickler",
        "_pickle.Unpickler",
        "dill.load",
        "dill._dill.load",
        "dill._dill._loads",
        "cloudpickle.load",
        "torch.serialization._load",
        "torch.serialization._legacy_load",
        "numpy.lib.npyio.load",
        "numpy.lib._npyio_impl.load",
        "pandas.io.pickle.read_pickle",
        "marshal.loads",
        "pickle.loads",
        "pickle.load",
        "_pickle.loads",
        "_pickle.load",
        "cPickle.loads",
        "dill.loads",
        "dill._dill.loads",
        "cloudpickle.loads",
        "joblib.load",
        "torch.load",
        "torch.serialization.load",
        "numpy.loads",
        "numpy.load",
        "pandas.read_pickle",
    }
)


# What the unpickler does with an imported object (bits of Global.uses / Unresolved.uses).
USE_CALL = 1  # called: REDUCE, INST, OBJ (``obj(*args)``)
USE_CONSTRUCT = 2  # created without calling it: NEWOBJ, NEWOBJ_EX (``cls.__new__(cls, ...)``)
USE_STATE = 4  # an object it made was given state by BUILD (``__setstate__``)
USE_MUTATE = 8  # the imported object itself was changed (BUILD, APPEND, SETITEM on it)
USE_ARG = 16  # handed to a call as an argument (what that does is the callee's business)
USE_UNMODELLED = 32  # a nested loader called with bytes that are not constants
USE_MODELLED = 64  # getattr(<import>, '<constant>'): read as the import of a dotted name
MAX_CALL_SAMPLES = 8
MAX_PASSED = 256  # distinct (callee, position) pairs kept per import
MAX_COMPUTED_ARGS = 4  # computed values kept per argument position of an import's calls
MAX_COMPUTED = 32  # computed callees / computed arguments kept as samples
STATE_POSITION = 100  # positions >= this: item i of a BUILD state tuple is 100 + i
KWARGS_POSITION = 200  # a keyword argument's value (NEWOBJ_EX)


class PickleError(Exception):
    """The opcode stream is malformed (invalid opcode, stack underflow, bad argument)."""


# -- the symbolic values on the stack ----------------------------------------------------------
class Mark:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<mark>"


MARK = Mark()


# The machine's stack values are created per opcode: slotted records, no generated methods.
class Global(Slotted):
    """An imported object: ``module`` and ``name`` exactly as written in the pickle."""

    __slots__ = ("calls", "computed_args", "module", "name", "offset", "opcode", "passed", "uses")

    def __init__(self, module: str, name: str, offset: int, opcode: str) -> None:
        self.module = module
        self.name = name
        self.offset = offset
        self.opcode = opcode
        self.calls: list[Call] = []
        self.uses = 0
        # (callee module, callee name, argument position) for each call it was handed to
        self.passed: dict[tuple[str, str, int], None] = {}
        # position -> computed values (call results...) handed to this import's calls there
        self.computed_args: dict[int, list[Any]] = {}

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


class Unresolved(Slotted):
    """An import whose module or name is not a constant string (computed, or an EXT code)."""

    __slots__ = ("calls", "computed_args", "detail", "offset", "opcode", "passed", "uses")

    def __init__(self, detail: str, offset: int, opcode: str) -> None:
        self.detail = detail
        self.offset = offset
        self.opcode = opcode
        self.calls: list[Call] = []
        self.uses = 0
        self.passed: dict[tuple[str, str, int], None] = {}
        self.computed_args: dict[int, list[Any]] = {}


class Call(Slotted):
    """The result of calling ``func`` with ``args`` (REDUCE/NEWOBJ/OBJ/INST)."""

    __slots__ = ("args", "func", "kwargs", "offset", "state")

    def __init__(self, func: Any, args: Any, offset: int, kwargs: Any = None) -> None:
        self.func = func
        self.args = args
        self.offset = offset
        self.kwargs = kwargs
        self.state: Any = None


class BytesRef(Slotted):
    """A payload too large to keep: where it is in the stream and how long it is."""

    __slots__ = ("length", "start")

    def __init__(self, start: int, length: int) -> None:
        self.start = start
        self.length = length


class Opaque(Slotted):
    """Something the machine does not model (persistent ids, out-of-band buffers)."""

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label


class PSet(list[Any]):
    """A set or frozenset under construction (kept as a list: items may be unhashable)."""


_FORGOTTEN = Opaque("<memoized value not kept>")
_MISSING = Opaque("<not in the memo>")
_DOUBLE = struct.Struct(">d")
_REFILLED = -2  # _run_at: the reader's buffer holds more now (decode the opcode again)
_DECLINED = -3  # _apply_runs: the bytes have the layout, but the opcodes must go one by one
_NEVER = -(1 << 62)  # a credit no count of opcodes makes good (runs off)
_CUT = -4  # _try_runs: the run is cut by the end of the buffer or of a FRAME, most likely
_IS_TRUE = (0x88).__eq__  # a NEWTRUE/NEWFALSE opcode byte -> its value
_DECODE_TEXT = methodcaller("decode", "utf-8", "surrogatepass")
_MANY = Opaque("<more computed values than kept>")


class NestedPayload(NamedTuple):
    """Bytes handed to a deserializer inside the pickle (``pickle.loads(b'...')``)."""

    loader: str
    data: bytes | BytesRef
    offset: int


class PickleResult(Slotted):
    """What one pickle (one PROTO..STOP program) imports and calls; the machine fills it in."""

    __slots__ = (
        "computed",
        "computed_total",
        "end",
        "error",
        "error_offset",
        "frame_split",
        "imports",
        "limit",
        "nested",
        "ops",
        "persistent_ids",
        "protocol",
        "result",
        "start",
        "tensor_elements",
        "tensors",
    )

    def __init__(self, start: int) -> None:
        self.start = start
        self.end: int | None = None  # offset after STOP; None if the stream broke first
        self.protocol: int | None = None
        self.ops = 0
        self.imports: list[Global | Unresolved] = []
        self.nested: list[NestedPayload] = []
        # calls whose callee is itself computed while loading (a call's result, a persistent
        # id, a forgotten memo entry): samples, and how many there were
        self.computed: list[Call] = []
        self.computed_total = 0
        # FRAME boundaries split an opcode's argument: file-object loaders read another
        # program ("unchecked" when that reading could not be analysed too)
        self.frame_split: str | None = None
        # a limit (time, opcodes, depth) stopped the machine: what it saw before is kept here
        # and the caller reports the limit once it has judged that
        self.limit: LimitExceeded | None = None
        self.error: str | None = None
        self.error_offset: int | None = None
        self.persistent_ids = 0
        self.tensors = 0  # torch tensor rebuild calls (torch._utils._rebuild_tensor*)
        self.tensor_elements = 0  # elements of those tensors (product of their sizes)
        self.result: Any = None  # what STOP returned


class PickleHooks(NamedTuple):
    """Container-specific behaviour at BUILD (joblib inline arrays)."""

    after_build: Callable[[Any, ByteReader, Machine], None] | None = None


# Opcode byte -> name, as in pickletools.opcodes (a test keeps them equal). Spelled out so
# the scan path does not import pickletools, pickle and their dependencies at start-up.
OPCODE_NAMES: dict[int, str] = {
    0x49: "INT",
    0x4A: "BININT",
    0x4B: "BININT1",
    0x4D: "BININT2",
    0x4C: "LONG",
    0x8A: "LONG1",
    0x8B: "LONG4",
    0x53: "STRING",
    0x54: "BINSTRING",
    0x55: "SHORT_BINSTRING",
    0x42: "BINBYTES",
    0x43: "SHORT_BINBYTES",
    0x8E: "BINBYTES8",
    0x96: "BYTEARRAY8",
    0x97: "NEXT_BUFFER",
    0x98: "READONLY_BUFFER",
    0x4E: "NONE",
    0x88: "NEWTRUE",
    0x89: "NEWFALSE",
    0x56: "UNICODE",
    0x8C: "SHORT_BINUNICODE",
    0x58: "BINUNICODE",
    0x8D: "BINUNICODE8",
    0x46: "FLOAT",
    0x47: "BINFLOAT",
    0x5D: "EMPTY_LIST",
    0x61: "APPEND",
    0x65: "APPENDS",
    0x6C: "LIST",
    0x29: "EMPTY_TUPLE",
    0x74: "TUPLE",
    0x85: "TUPLE1",
    0x86: "TUPLE2",
    0x87: "TUPLE3",
    0x7D: "EMPTY_DICT",
    0x64: "DICT",
    0x73: "SETITEM",
    0x75: "SETITEMS",
    0x8F: "EMPTY_SET",
    0x90: "ADDITEMS",
    0x91: "FROZENSET",
    0x30: "POP",
    0x32: "DUP",
    0x28: "MARK",
    0x31: "POP_MARK",
    0x67: "GET",
    0x68: "BINGET",
    0x6A: "LONG_BINGET",
    0x70: "PUT",
    0x71: "BINPUT",
    0x72: "LONG_BINPUT",
    0x94: "MEMOIZE",
    0x82: "EXT1",
    0x83: "EXT2",
    0x84: "EXT4",
    0x63: "GLOBAL",
    0x93: "STACK_GLOBAL",
    0x52: "REDUCE",
    0x62: "BUILD",
    0x69: "INST",
    0x6F: "OBJ",
    0x81: "NEWOBJ",
    0x92: "NEWOBJ_EX",
    0x80: "PROTO",
    0x2E: "STOP",
    0x95: "FRAME",
    0x50: "PERSID",
    0x51: "BINPERSID",
}


_SCALARS = frozenset({str, int, bytes, float, bool, type(None)})
_BUILTINS = frozenset({"builtins", "__builtin__"})
_NUMPY_CORE = frozenset({"numpy.core", "numpy._core"})
_STRUCTURED = frozenset({list, dict, tuple, PSet, Call})
_NAME_TYPES = frozenset({str, Global, Unresolved})


def _hashable(value: Any) -> bool:
    if type(value) in _SCALARS:
        return True
    try:
        hash(value)
    except TypeError:
        return False
    return not isinstance(value, Global | Unresolved | Call | BytesRef | Opaque)


# -- runs of constants -------------------------------------------------------------------------
# How a value of a run is read, while its layout is learnt; the groups of _Run's fields, in
# this order: constants, then fields read at an offset from the run's start, then tuples.
_V_CONST = 0
_V_LITTLE = 1  # a little-endian integer field (BININT, BININT1, BININT2)
_V_FLOAT = 2  # BINFLOAT (big-endian)
_V_TEXT = 3  # UTF-8 text (SHORT_BINUNICODE, BINUNICODE)
_V_GET = 4  # BINGET/LONG_BINGET of a memo index
_V_BOOL = 5  # NEWTRUE or NEWFALSE (either opcode matches: records alternate them)
_V_TUPLE = 6  # TUPLE1/2/3 of values before it in the run
_V_GROUPS = 7
_V_PIECE = -1  # an opcode that pushes nothing (MEMOIZE, BINPUT, LONG_BINPUT)


class _Run(NamedTuple):
    """The layout of a run ``MARK <constants, memo reads and writes, small tuples>
    SETITEMS|APPENDS``, optionally behind the new container it fills (``EMPTY_DICT MEMOIZE``:
    a record).

    A pickle of many records writes the same layout again and again (the same keys, fields of
    the same widths). ``pattern`` matches the run's bytes with its variable fields as
    wildcards of their exact width, so one C-level match replaces a dispatch per opcode; the
    fields are then read at their offsets (integers and floats by one ``struct`` each), and
    the run's effect (items into the container under the MARK, memo entries) is applied
    exactly as the opcodes one by one would. Only opcodes whose value depends on nothing but
    their bytes and the memo are allowed in.
    """

    pattern: re.Pattern[bytes]  # one or more runs of the layout, back to back
    size: int  # bytes of one run (every field has its width: the layout is fixed)
    consts: tuple[Any, ...]
    little: struct.Struct | None  # the integer fields, offsets from the run's start
    big: struct.Struct | None  # the float fields
    texts: tuple[tuple[int, int], ...]  # [start, end) of each text field
    gets: tuple[int, ...]  # memo indices read
    bools: struct.Struct | None  # the NEWTRUE/NEWFALSE opcodes
    tuples: tuple[Callable[[tuple[Any, ...]], Any], ...]  # each tuple from the fields before
    # the fields (consts, little, big, texts, gets, bools, tuples) -> the values in stack order
    order: Callable[[tuple[Any, ...]], Any]
    pushed: int  # values left on the run's stack
    # when every key is a constant: the keys, and the values picked from the fields
    keys: tuple[Any, ...] | None
    items: Callable[[tuple[Any, ...]], Any]
    slots: Callable[[tuple[Any, ...]], Any] | None  # the values MEMOIZE stores, in order
    memoized: int  # MEMOIZEs of the run
    memoized_tuples: int  # of which store a tuple (a structured value)
    long_fields: tuple[int, ...]  # memoized text fields that may be longer than LONG_TEXT
    long_texts: tuple[int, ...]  # the same, as indices of the text fields
    long_const: int  # characters of memoized constant text longer than LONG_TEXT
    setitems: bool  # SETITEMS into a dict (else APPENDS into a list)
    key_gets: bool  # keys read from the memo (checked at each use)
    ops: int  # opcodes of the run, MARK and SETITEMS/APPENDS included
    # bytes before the MARK when the run makes its container (EMPTY_DICT/EMPTY_LIST, then
    # MEMOIZE: 2, BINPUT: 3, LONG_BINPUT: 6), else 0
    head: int
    puts: struct.Struct | None  # the indices BINPUT/LONG_BINPUT write at, if any
    put_order: tuple[int, ...]  # for each: its place among the run's memo writes


def _compile_run(buf: bytes, i: int, n: int, head: int) -> tuple[_Run | None, int]:
    """The layout of the run at ``buf[i]`` (within ``buf[:n]``): its MARK, or with ``head``
    2, ``EMPTY_DICT MEMOIZE MARK`` (or ``EMPTY_LIST``): a new container and its items.

    Returns it (None if the run holds anything else or is not complete in the buffer) and the
    work spent, in opcodes scanned.
    """
    q = i + head + 1
    puts: list[tuple[int, str]] = []  # BINPUT/LONG_BINPUT: (offset of the index, struct code)
    put_order: list[int] = []
    if head > 2:  # the container's own BINPUT/LONG_BINPUT
        puts.append((2, "B" if head == 3 else "I"))
        put_order.append(0)
    # per item: (opcode start, field start, field end, kind, extra): extra is the constant,
    # the decoded text, the memo index read, the struct code or the tuple's members
    items: list[tuple[int, int, int, int, Any]] = []
    memoized: list[int] = []  # per MEMOIZE: the item it stores
    on_stack: list[int] = []  # the run's stack, as items
    count = 1
    while True:
        if q >= n or count > MAX_RUN_OPS:
            return None, count
        code = buf[q]
        count += 1
        if code == 0x94 or code == 0x71 or code == 0x72:  # MEMOIZE, BINPUT, LONG_BINPUT
            # stores the value on top: BINPUT at its index, which must be where MEMOIZE would
            # store (as pickle writes them), checked for every run
            if not on_stack or items[on_stack[-1]][3] == _V_GET:
                return None, count  # an underflow, or a value whose kind is not known here
            width = 0 if code == 0x94 else 1 if code == 0x71 else 4
            if q + 1 + width > n:
                return None, count
            if width:
                put_order.append(len(memoized) + (1 if head else 0))
                puts.append((q + 1 - i, "B" if width == 1 else "I"))
            memoized.append(on_stack[-1])
            items.append((q, q + 1, q + 1 + width, _V_PIECE, None))
            q += 1 + width
            continue
        if code == 0x75 or code == 0x65:  # SETITEMS, APPENDS
            break
        if 0x85 <= code <= 0x87:  # TUPLE1, TUPLE2, TUPLE3: of the values on top
            width = code - 0x84
            if len(on_stack) < width:
                return None, count  # reaching under the MARK: the handler's error
            members = on_stack[-width:]
            del on_stack[-width:]
            on_stack.append(len(items))
            items.append((q, q + 1, q + 1, _V_TUPLE, members))
            q += 1
            continue
        if code == 0x8C or code == 0x58:  # SHORT_BINUNICODE, BINUNICODE
            lead = 2 if code == 0x8C else 5
            if q + lead > n:
                return None, count
            size = buf[q + 1] if code == 0x8C else int.from_bytes(buf[q + 1 : q + 5], "little")
            start = q + lead
            end = start + size
            if size > MAX_RUN_TEXT or end > n:
                return None, count
            try:
                text = buf[start:end].decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                return None, count  # the opcode's handler reports it
            on_stack.append(len(items))
            items.append((q, start, end, _V_TEXT, text))
            q = end
            continue
        field = _RUN_FIELDS.get(code)
        if field is None:
            return None, count
        kind, width, form = field
        if q + 1 + width > n:
            return None, count
        on_stack.append(len(items))
        if kind == _V_GET:
            index = int.from_bytes(buf[q + 1 : q + 1 + width], "little")
            items.append((q, q + 1 + width, q + 1 + width, _V_GET, index))
        else:
            items.append((q, q + 1, q + 1 + width, kind, form))
        q += 1 + width
    setitems = buf[q] == 0x75
    if not on_stack or (setitems and len(on_stack) % 2):
        return None, count
    if puts and len(puts) != len(memoized) + (1 if head else 0):
        return None, count  # MEMOIZE and BINPUT mixed: no pickler writes that
    if head and setitems is not (buf[i] == 0x7D):
        return None, count  # items that the new container does not take (modelled)
    keys_at = set(on_stack[::2]) if setitems else set()
    if any(items[k][3] == _V_TUPLE for k in keys_at):
        return None, count  # a tuple key may hold what cannot be hashed: the handler's check
    if head > 2:  # the container's index is a field
        mark = re.escape(buf[i + head : i + head + 1])
        pieces = [re.escape(buf[i : i + 2]), b".{%d}" % (head - 2), mark]
    else:
        pieces = [re.escape(buf[i : i + head + 1])]
    groups: list[list[Any]] = [[] for _ in range(_V_GROUPS)]
    place: dict[int, tuple[int, int]] = {}  # item -> (group, index in it)
    for k, (op, start, end, kind, extra) in enumerate(items):
        if kind in (_V_PIECE, _V_TUPLE):
            pieces.append(re.escape(buf[op : op + 1]))
            if end > op + 1:  # a BINPUT/LONG_BINPUT index
                pieces.append(b".{%d}" % (end - op - 1))
            if kind == _V_TUPLE:
                place[k] = (_V_TUPLE, len(groups[_V_TUPLE]))
                groups[_V_TUPLE].append(extra)
            continue
        literal = kind in (_V_CONST, _V_GET)
        if kind == _V_TEXT and k in keys_at and end - start <= 64:
            literal = True  # a key: the same in every record (else the layout does not match)
            kind = _V_CONST
            extra = items[k][4]
        if literal:
            pieces.append(re.escape(buf[op:end]))
            place[k] = (kind, len(groups[kind]))
            groups[kind].append(extra)
            continue
        if kind == _V_BOOL:
            pieces.append(b"[\\x88\\x89]")
            place[k] = (kind, len(groups[kind]))
            groups[kind].append((op - i, "B"))
            continue
        pieces.append(re.escape(buf[op:start]))
        pieces.append(b".{%d}" % (end - start))
        place[k] = (kind, len(groups[kind]))
        groups[kind].append((start - i, end - i) if kind == _V_TEXT else (start - i, extra))
    pieces.append(re.escape(buf[q : q + 1]))
    bases = [0] * (_V_GROUPS + 1)
    for g in range(_V_GROUPS):
        bases[g + 1] = bases[g] + len(groups[g])

    def at(item: int) -> int:
        group, index = place[item]
        return bases[group] + index

    order = [at(k) for k in on_stack]
    slots = [at(k) for k in memoized]
    texts = groups[_V_TEXT]
    long_fields = tuple(
        at(k)
        for k in memoized
        if place[k][0] == _V_TEXT and _text_bytes(texts[place[k][1]]) > LONG_TEXT
    )
    long_const = sum(
        len(items[k][4])
        for k in memoized
        if place[k][0] == _V_CONST and type(items[k][4]) is str and len(items[k][4]) > LONG_TEXT
    )
    keys = None
    if setitems and all(place[k][0] == _V_CONST for k in on_stack[::2]):
        keys = tuple(groups[_V_CONST][place[k][1]] for k in on_stack[::2])
    size = q + 1 - i
    tuples = tuple(_getter([at(m) for m in members]) for members in groups[_V_TUPLE])
    source = b"(?:" + b"".join(pieces) + b")+"
    pattern = re.compile(source, re.DOTALL)
    if len(source) > RUN_CACHED_PATTERN:
        # re keeps the last 512 patterns it compiled for the whole process: large ones made
        # from scanned bytes must not stay there (the run holds its own)
        re.purge()
    run = _Run(
        pattern,
        size,
        tuple(groups[_V_CONST]),
        _fields("<", groups[_V_LITTLE], size),
        _fields(">", groups[_V_FLOAT], size),
        tuple(texts),
        tuple(groups[_V_GET]),
        _fields("<", groups[_V_BOOL], size),
        tuples,
        _getter(order),
        len(order),
        keys,
        _getter(order[1::2] if keys is not None else order),
        _getter(slots) if slots else None,
        len(slots),
        sum(1 for k in memoized if place[k][0] == _V_TUPLE),
        long_fields,
        tuple(place[k][1] for k in memoized if at(k) in long_fields),
        long_const,
        setitems,
        setitems and any(place[k][0] == _V_GET for k in on_stack[::2]),
        count + (2 if head else 0),
        head,
        _fields("<", puts, size),
        tuple(put_order),
    )
    # compiling the pattern costs about 100 us and 5 us per opcode (re's compiler is Python):
    # in opcodes decoded one by one, about RUN_COMPILE_COST and 30 per opcode
    return run, RUN_COMPILE_COST + 30 * count


def _text_bytes(span: tuple[int, int]) -> int:
    return span[1] - span[0]


def _fields(order: str, fields: list[tuple[int, str]], size: int) -> struct.Struct | None:
    """One struct reading every field at its offset from the run's start (the gaps as
    padding), ``size`` bytes long: runs back to back are read by ``iter_unpack``."""
    if not fields:
        return None
    form = [order]
    at = 0
    for offset, code in fields:
        if offset > at:
            form.append(f"{offset - at}x")
        form.append(code)
        at = offset + struct.calcsize(order + code)
    if size > at:
        form.append(f"{size - at}x")
    return struct.Struct("".join(form))


def _getter(positions: list[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """``positions`` picked from a tuple, as a tuple (itemgetter, but a tuple for one too)."""
    if len(positions) == 1:
        only = positions[0]
        return lambda values: (values[only],)
    return cast(Callable[[tuple[Any, ...]], tuple[Any, ...]], itemgetter(*positions))


# opcode -> (how its value is read, argument width, struct code) for the fixed-width opcodes
_RUN_FIELDS: dict[int, tuple[int, int, Any]] = {
    0x4A: (_V_LITTLE, 4, "i"),  # BININT
    0x4B: (_V_LITTLE, 1, "B"),  # BININT1
    0x4D: (_V_LITTLE, 2, "H"),  # BININT2
    0x47: (_V_FLOAT, 8, "d"),  # BINFLOAT
    0x4E: (_V_CONST, 0, None),  # NONE
    0x88: (_V_BOOL, 0, True),  # NEWTRUE
    0x89: (_V_BOOL, 0, False),  # NEWFALSE
    0x68: (_V_GET, 1, None),  # BINGET
    0x6A: (_V_GET, 4, None),  # LONG_BINGET
}


def _fill(run: _Run, target: Any, values: tuple[Any, ...]) -> None:
    """SETITEMS/APPENDS of a run's values into its container (a dict or a list), as the
    inline path and the handlers do it: at most MAX_ITEMS items kept. With constant keys
    (``run.keys``) ``values`` are only the values."""
    if run.setitems:
        keys = run.keys
        pairs = len(values) if keys is not None else len(values) >> 1
        if keys is not None:
            items: Any = zip(keys, values, strict=True)
        else:
            it = iter(values)
            items = zip(it, it, strict=False)
        if len(target) + pairs <= MAX_ITEMS:
            target.update(items)
        else:
            for key, value in items:
                if len(target) < MAX_ITEMS:
                    target[key] = value
    else:
        room = MAX_ITEMS - len(target)
        if room > 0:
            target.extend(values[:room])


class Machine:
    """Runs one pickle program symbolically over a :class:`ByteReader`."""

    RUNS = True  # decode runs of constants by layout (tests compare with this off)
    # Opcodes decoded one by one before runs are first tried: a small pickle (a config, the
    # state of a few layers) ends before learning a layout could pay (1,000 small state-dict
    # pickles: 0.31 s CPU opcode by opcode, 0.43 s with runs tried from the start; measured
    # with `mlsec scan benchmarks/.work/scale/small-models-1/repo -j1`). Tests set it to 0.
    RUN_WARMUP = 10_000

    def __init__(
        self,
        reader: ByteReader,
        budget: Budget,
        hooks: PickleHooks | None = None,
    ) -> None:
        self.r = reader
        self.budget = budget
        self.hooks = hooks or PickleHooks()
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.memo_len = 0  # indexes set so far (kept or not), as the unpickler counts them
        self.frame_end: int | None = None  # where the current FRAME ends (memory reading)
        self._frame_reset = False
        self.view = isinstance(reader, StreamView)
        view = cast(StreamView, reader)
        self._read_contiguous = view.read_contiguous if self.view else reader.read
        self._skip_contiguous = view.skip_contiguous if self.view else reader.skip
        self._memo_structured = 0
        self._memo_long_text = 0  # characters of memoized strings longer than LONG_TEXT
        self._put_top = -1  # the highest index PUT/BINPUT/LONG_BINPUT/MEMOIZE stored at
        self._runs: list[_Run] = []  # layouts of runs seen (most recent first)
        # what runs may still cost, in opcodes, besides a quarter of those decoded (see _run_at)
        self._run_credit = RUN_CREDIT if self.RUNS else _NEVER
        self._run_ops = 0  # opcodes the runs last applied stand for
        self._run_waste = 0  # opcodes of runs matched but not applied by the last attempt
        # chances to skip before runs are tried again (see _run_at), and the next wait
        self._mark_wait = self._mark_backoff = 0
        self._head_wait = self._head_backoff = 0
        self._drained = False  # a refill for the runs met the stream's end
        self.result = PickleResult(start=reader.tell())

    # -- driver ------------------------------------------------------------------------------
    def run(self) -> PickleResult:
        """Execute until STOP; errors are recorded in the result, never raised.

        The loop decodes the opcodes that make up most of any real pickle (memo, small ints
        and strings, containers, marks) inline on the reader's buffer, with the stack, memo
        and buffer in local variables: a method call per opcode would cost more than the
        opcode. Everything else (and any opcode whose bytes are not all buffered, or that
        needs a check the inline code does not make) goes to the ``op_*`` handlers, with the
        state written back first and read again after.
        """
        r = self.r
        dispatch = _HANDLERS
        warmup = self.RUN_WARMUP
        res = self.result
        memo = self.memo
        metastack = self.metastack
        scalars = _SCALARS
        structured = _STRUCTURED
        name_types = _NAME_TYPES
        view = self.view
        missing = _MISSING
        unpack_double = _DOUBLE.unpack_from
        ops = 0
        next_check = OPS_PER_CHECK
        checked = 0  # opcodes already charged to the budget
        stack = self.stack
        buf = r._buf
        i = r._i
        n = self._inline_end()
        # memo counters as locals; written back before every handler (which may use them)
        memo_len = self.memo_len
        structured_kept = self._memo_structured
        try:
            while True:
                if i + 9 <= n:  # the opcode and 8 argument bytes are buffered
                    code = buf[i]
                    if code == 0x68:  # BINGET
                        value = memo.get(buf[i + 1], missing)
                        if value is not missing:
                            stack.append(value)
                            i += 2
                            ops += 1
                            continue
                    elif code == 0x94 or code == 0x71:  # MEMOIZE, BINPUT
                        if stack:
                            # _put, inline
                            if code == 0x94:
                                index = memo_len
                            else:
                                index = buf[i + 1]
                                if index > self._put_top:
                                    self._put_top = index
                            value = stack[-1]
                            kind = type(value)
                            if kind in structured:  # a memory bound, as in _put
                                if structured_kept >= MAX_MEMO_STRUCTURED:
                                    value = _FORGOTTEN
                                else:
                                    structured_kept += 1
                            elif kind is str and len(value) > LONG_TEXT:
                                self._memo_long_text += len(value)
                                if self._memo_long_text > MAX_MEMO_LONG_TEXT:
                                    value = _FORGOTTEN
                            if index in memo:
                                memo[index] = value
                            else:
                                memo_len += 1
                                size = len(memo)
                                if size < MAX_MEMO or (
                                    size < MAX_MEMO_NAMES and kind in name_types
                                ):
                                    memo[index] = value
                            i += 1 if code == 0x94 else 2
                            ops += 1
                            continue
                    elif code == 0x8C or code == 0x58:
                        # SHORT_BINUNICODE; BINUNICODE (protocols 1-3 write every str so)
                        if code == 0x8C:
                            start = i + 2
                            end = start + buf[i + 1]
                        else:
                            start = i + 5
                            end = start + int.from_bytes(buf[i + 1 : start], "little")
                        if end <= n:
                            try:
                                stack.append(buf[start:end].decode("utf-8", "surrogatepass"))
                            except UnicodeDecodeError:
                                pass  # the handler reports it
                            else:
                                i = end
                                ops += 1
                                continue
                    elif code == 0x4B:  # BININT1
                        stack.append(buf[i + 1])
                        i += 2
                        ops += 1
                        continue
                    elif code == 0x4D:  # BININT2
                        stack.append(buf[i + 1] | buf[i + 2] << 8)
                        i += 3
                        ops += 1
                        continue
                    elif code == 0x4A:  # BININT
                        stack.append(int.from_bytes(buf[i + 1 : i + 5], "little", signed=True))
                        i += 5
                        ops += 1
                        continue
                    elif code == 0x28:  # MARK
                        if len(metastack) < MAX_STACK:
                            if self._mark_wait:
                                self._mark_wait -= 1
                            elif (
                                stack
                                and ops >= warmup
                                and self._run_credit + (ops >> RUN_SHARE) > 0
                            ):
                                target = stack[-1]
                                if type(target) is dict or type(target) is list:
                                    self.memo_len = memo_len
                                    self._memo_structured = structured_kept
                                    end = self._run_at(buf, i, n, stack, 0)
                                    if end > 0:
                                        ops += self._run_ops
                                        memo_len = self.memo_len
                                        structured_kept = self._memo_structured
                                        i = end
                                        continue
                                    if end == _REFILLED:  # the same MARK, more buffered
                                        buf = r._buf
                                        i = r._i
                                        n = self._inline_end()
                                        continue
                            metastack.append(stack)
                            stack = []
                            i += 1
                            ops += 1
                            continue
                    elif code == 0x75 or code == 0x65:  # SETITEMS, APPENDS
                        if metastack and metastack[-1]:
                            target = metastack[-1][-1]
                            kind = type(target)
                            if code == 0x75 and kind is dict and not len(stack) & 1:
                                if len(target) + (len(stack) >> 1) <= MAX_ITEMS and (
                                    scalars.issuperset(map(type, stack[::2]))
                                ):
                                    it = iter(stack)
                                    target.update(zip(it, it, strict=False))
                                    stack = metastack.pop()
                                    i += 1
                                    ops += 1
                                    continue
                            elif code == 0x65 and kind is list:
                                room = MAX_ITEMS - len(target)
                                if room > 0:
                                    target.extend(stack[:room])
                                stack = metastack.pop()
                                i += 1
                                ops += 1
                                continue
                    elif code == 0x86:  # TUPLE2
                        if len(stack) >= 2:
                            value = stack.pop()
                            stack[-1] = (stack[-1], value)
                            i += 1
                            ops += 1
                            continue
                    elif code == 0x85:  # TUPLE1
                        if stack:
                            stack[-1] = (stack[-1],)
                            i += 1
                            ops += 1
                            continue
                    elif code == 0x87:  # TUPLE3
                        if len(stack) >= 3:
                            stack[-3:] = [(stack[-3], stack[-2], stack[-1])]
                            i += 1
                            ops += 1
                            continue
                    elif code == 0x74:  # TUPLE
                        if metastack:
                            items = tuple(stack[:MAX_ITEMS])
                            stack = metastack.pop()
                            stack.append(items)
                            i += 1
                            ops += 1
                            continue
                    elif code == 0x47:  # BINFLOAT
                        stack.append(unpack_double(buf, i + 1)[0])
                        i += 9
                        ops += 1
                        continue
                    elif code == 0x4E:  # NONE
                        stack.append(None)
                        i += 1
                        ops += 1
                        continue
                    elif code == 0x88 or code == 0x89:  # NEWTRUE, NEWFALSE
                        stack.append(code == 0x88)
                        i += 1
                        ops += 1
                        continue
                    elif code == 0x5D or code == 0x7D or code == 0x29:  # EMPTY_LIST/DICT/TUPLE
                        head = 0  # a record: a new container, memoized, then MARK?
                        if code != 0x29:
                            put = buf[i + 1]
                            if put == 0x94:
                                head = 2 if buf[i + 2] == 0x28 else 0
                            elif put == 0x71 or put == 0x72:  # BINPUT, LONG_BINPUT
                                head = 3 if put == 0x71 else 6
                                if buf[i + head] != 0x28:
                                    head = 0
                        if not head:
                            pass
                        elif self._head_wait:  # runs did not pay lately (see _run_at)
                            self._head_wait -= 1
                        elif (
                            ops >= warmup
                            and self._run_credit + (ops >> RUN_SHARE) > 0
                            and len(metastack) < MAX_STACK
                        ):
                            self.memo_len = memo_len
                            self._memo_structured = structured_kept
                            end = self._run_at(buf, i, n, stack, head)
                            if end > 0:
                                ops += self._run_ops
                                memo_len = self.memo_len
                                structured_kept = self._memo_structured
                                i = end
                                continue
                            if end == _REFILLED:
                                buf = r._buf
                                i = r._i
                                n = self._inline_end()
                                continue
                        stack.append([] if code == 0x5D else {} if code == 0x7D else ())
                        i += 1
                        ops += 1
                        continue
                    elif code == 0x73:  # SETITEM
                        target = stack[-3] if len(stack) >= 3 else None
                        if type(target) is dict and type(stack[-2]) in scalars:
                            if len(target) < MAX_ITEMS:
                                target[stack[-2]] = stack[-1]
                            del stack[-2:]
                            i += 1
                            ops += 1
                            continue
                    elif code == 0x61:  # APPEND
                        if len(stack) >= 2 and type(stack[-2]) is list:
                            value = stack.pop()
                            if len(stack[-1]) < MAX_ITEMS:
                                stack[-1].append(value)
                            i += 1
                            ops += 1
                            continue
                    elif code == 0x43 or code == 0x55:  # SHORT_BINBYTES, SHORT_BINSTRING
                        end = i + 2 + buf[i + 1]
                        if end <= n:
                            data = buf[i + 2 : end]
                            stack.append(data if code == 0x43 else data.decode("latin-1"))
                            i = end
                            ops += 1
                            continue
                # The general path: one handler per opcode, on the reader's own state. It runs
                # at least once per buffer refill (64 KiB, 1 MiB for runs), so the budget is
                # checked here.
                self.stack = stack
                r._i = i
                self.memo_len = memo_len
                self._memo_structured = structured_kept
                if ops >= next_check:
                    self.budget.spend_ops(ops - checked)
                    checked = ops
                    next_check = ops + OPS_PER_CHECK
                    if len(stack) + len(metastack) > MAX_STACK:
                        raise _too_deep()
                if i < n:
                    code = buf[i]
                    r._i = i + 1
                    pos = r._base + i
                else:
                    pos = r.tell()
                    code = r.byte()
                    if code < 0:
                        raise Truncated("stream ends before STOP")
                handler = dispatch.get(code)
                if handler is None:
                    raise PickleError(f"invalid opcode 0x{code:02x}")
                ops += 1
                frame_end = self.frame_end
                done = handler(self, pos)
                if frame_end is not None:
                    self._frame_check(frame_end, pos)
                stack = self.stack
                buf = r._buf
                i = r._i
                n = len(buf) if self.frame_end is None and not view else self._inline_end()
                memo_len = self.memo_len
                structured_kept = self._memo_structured
                if done:
                    res.end = r.tell()
                    break
        except (PickleError, Truncated) as exc:
            res.error = str(exc)
            res.error_offset = r.tell()
        except (ValueError, OverflowError, UnicodeDecodeError, RecursionError) as exc:
            res.error = f"malformed argument: {exc}"
            res.error_offset = r.tell()
        except LimitExceeded as exc:
            res.limit = exc
        self.stack = stack
        res.ops = ops
        if res.limit is None:
            try:
                self.budget.spend_ops(ops - checked)
            except LimitExceeded as exc:
                res.limit = exc
        return res

    def _run_at(self, buf: bytes, i: int, n: int, stack: list[Any], head: int) -> int:
        """Apply the runs from ``buf[i]`` on by their layout; where they end, or -1.

        ``head`` 0: a MARK whose items go into the container ``stack[-1]``; else a new
        container, memoized, and its items (see _compile_run). Consecutive runs of the same
        layout are applied in one go; the opcodes they stand for are in ``self._run_ops``.

        Runs are tried while they pay off. An attempt costs about RUN_CALL_COST opcodes
        (and learning a layout what re's compiler takes), and earns the opcodes it covers:
        an attempt that does not earn more than it costs makes the next ones wait (1, 3, 7...
        up to RUN_MAX_WAIT chances skipped, for MARKs and new containers apart), and runs
        that never pay spend at most RUN_CREDIT and a quarter of the opcodes decoded.
        """
        self._run_waste = 0
        end = self._try_runs(buf, i, n, stack, head)
        if end == _REFILLED:
            return end
        if end == _CUT:  # no fault of the layout: nothing to account
            return -1
        # runs matched but not applied cost their matching (an eighth of their opcodes), so
        # that layouts cut again and again (a BINPUT index out of order in every third
        # record) cannot rescan all that follows at every record (quadratic)
        waste = self._run_waste >> RUN_WASTE_SHARE
        gain = (self._run_ops if end > 0 else 0) - RUN_CALL_COST - waste
        self._run_credit += gain
        if head:
            self._head_backoff = 0 if gain > 0 else min(2 * self._head_backoff + 1, RUN_MAX_WAIT)
            self._head_wait = self._head_backoff
        else:
            self._mark_backoff = 0 if gain > 0 else min(2 * self._mark_backoff + 1, RUN_MAX_WAIT)
            self._mark_wait = self._mark_backoff
        return end

    def _try_runs(self, buf: bytes, i: int, n: int, stack: list[Any], head: int) -> int:
        """_run_at without its accounting (and _CUT for a run the buffer's end cuts)."""
        runs = self._runs
        setitems = head == 0 and type(stack[-1]) is dict
        for k, run in enumerate(runs):
            if run.head == head and (head or run.setitems is setitems):
                end = self._apply_runs(run, buf, i, n, stack)
                if end >= 0:
                    if k:
                        runs.insert(0, runs.pop(k))
                    return end
                if end == _REFILLED:
                    return end
                if end == _DECLINED:
                    return -1  # the layout is known: learning it again would not help
        if any(run.head == head and run.size > n - i for run in runs):
            # cut by the buffer's end, most likely
            return _REFILLED if self._refill(buf, i, n) else _CUT
        built, cost = _compile_run(buf, i, n, head)
        self._run_credit -= cost
        if built is None or (not head and built.setitems is not setitems):
            return -1
        runs.insert(0, built)
        del runs[RUN_CACHE:]
        end = self._apply_runs(built, buf, i, n, stack)
        return end if end >= 0 or end == _REFILLED else -1

    def _refill(self, buf: bytes, i: int, n: int) -> bool:
        """Have a file buffered RUN_READAHEAD bytes ahead from ``buf[i]`` (the reader's
        position does not move), so that runs are met whole; whether the buffer moved.

        Only where fewer than RUN_READAHEAD / 2 bytes are left: at least that many are
        decoded between two refills, so each byte is copied into the buffer at most twice.
        """
        r = self.r
        if (
            r.seekable
            and self.frame_end is None
            and n == len(buf)
            and not self._drained
            and n - i < RUN_READAHEAD // 2
        ):
            r._i = i
            # at the stream's end nothing more comes: no refill after that
            self._drained = not r._fill(RUN_READAHEAD)
            return True
        return False

    def _apply_runs(self, run: _Run, buf: bytes, i: int, n: int, stack: list[Any]) -> int:
        """The effect of the runs of this layout from ``buf[i]`` on, as their opcodes one by
        one; where they end, or (nothing done) -1 if the first does not have the layout,
        _DECLINED if it has but one of its opcodes would take the general path."""
        # What declines whatever the bytes are is decided first: then only one run is
        # matched (is it this layout?), not every run that follows (a file of records that
        # all decline would be rescanned at every try).
        consts = run.consts
        declined = (run.slots is not None or run.head) and self._put_top >= self.memo_len
        # (MEMOIZE would overwrite an entry PUT ahead of it)
        if run.gets and not declined:
            # Runs write the memo only at memo_len and past it: what they read there is the
            # same for every run of this call.
            if max(run.gets) >= self.memo_len:
                declined = True
            else:
                memo = self.memo
                read = tuple([memo.get(index, _MISSING) for index in run.gets])
                # an entry over the cap, or an error (the handler decides); keys that are not
                # constants (the handler's checks, loosely)
                declined = any(value is _MISSING for value in read) or (
                    run.key_gets and not _SCALARS.issuperset(map(type, read))
                )
                consts += read  # in _Run.order, the memo reads follow the texts: see _fields
        if declined:
            one = run.pattern.match(buf, i, min(n, i + run.size))
            return -1 if one is None else _DECLINED
        found = run.pattern.match(buf, i, min(n, i + RUN_BATCH * run.size))
        if found is None:
            return -1
        if found.end() + run.size > n and self._refill(buf, i, n):
            return _REFILLED  # the buffer's end may cut the runs: match them whole
        # past here the bytes have the layout: "not applied" is _DECLINED
        stop = found.end()
        matched = (stop - i) // run.size
        if run.puts is not None:
            stop = self._in_order(run, buf, i, stop)
        if stop == i:
            self._run_waste += matched * run.ops
            return _DECLINED
        if len(self.memo) >= max(MAX_MEMO, MAX_MEMO_NAMES):
            done = self._full_memo_runs(run, consts, buf, i, stop, stack)
        else:
            done = self._exact_runs(run, consts, buf, i, stop, stack)
        if done and run.puts is not None:  # they wrote at memo_len: the highest is below it
            self._put_top = max(self._put_top, self.memo_len - 1)
        self._run_ops = done * run.ops
        self._run_waste += (matched - done) * run.ops
        return i + done * run.size if done else _DECLINED

    def _in_order(self, run: _Run, buf: bytes, i: int, stop: int) -> int:
        """Where the runs in ``buf[i:stop]`` whose BINPUT/LONG_BINPUTs each write at the next
        index (where MEMOIZE would, as pickle writes them) end."""
        assert run.puts is not None
        start = self.memo_len
        written = list(chain.from_iterable(run.puts.iter_unpack(memoryview(buf)[i:stop])))
        if written == list(range(start, start + len(written))):
            return stop
        first = next(k for k, index in enumerate(written) if index != start + k)
        return i + first // len(run.put_order) * run.size

    def _fields(self, run: _Run, consts: tuple[Any, ...], buf: bytes, j: int) -> Any:
        """The fields of the run at ``buf[j]`` in _Run.order's groups, or None where an
        opcode of it would take the general path (text that is not UTF-8)."""
        fields: tuple[Any, ...] = run.consts
        if run.little is not None:
            fields += run.little.unpack_from(buf, j)
        if run.big is not None:
            fields += run.big.unpack_from(buf, j)
        texts = run.texts
        if texts:
            try:
                if len(texts) == 1:
                    a, b = texts[0]
                    fields += (buf[j + a : j + b].decode("utf-8", "surrogatepass"),)
                else:
                    fields += tuple(
                        [buf[j + a : j + b].decode("utf-8", "surrogatepass") for a, b in texts]
                    )
            except UnicodeDecodeError:
                return None  # the handler reports it
        if run.gets:
            fields += consts[len(run.consts) :]
        if run.bools is not None:
            fields += tuple(map(_IS_TRUE, run.bools.unpack_from(buf, j)))
        for make in run.tuples:
            fields += (make(fields),)
        return fields

    def _full_memo_runs(
        self, run: _Run, consts: tuple[Any, ...], buf: bytes, i: int, stop: int, stack: list[Any]
    ) -> int:
        """_exact_runs for a memo that keeps nothing more (only its counters move), the hot
        loop of a pickle of many records; how many runs were applied."""
        head, setitems, keys, items = run.head, run.setitems, run.keys, run.items
        simple = not run.gets and run.bools is None and not run.tuples
        if simple and head and keys is not None and len(keys) <= MAX_ITEMS:
            done = self._records(run, buf, i, stop, stack)
            if done:
                return done
        little, big, texts, long_fields = run.little, run.big, run.texts, run.long_fields
        text = texts[0] if simple and len(texts) == 1 else None
        long_text = 0
        done = 0
        writes = run.memoized + (1 if head else 0)
        for j in range(i, stop, run.size):
            if text is not None or (simple and not texts):
                fields = consts
                if little is not None:
                    fields += little.unpack_from(buf, j)
                if big is not None:
                    fields += big.unpack_from(buf, j)
                if text is not None:
                    try:
                        fields += (buf[j + text[0] : j + text[1]].decode("utf-8", "surrogatepass"),)
                    except UnicodeDecodeError:
                        break  # the handler reports it
            else:
                fields = self._fields(run, consts, buf, j)
                if fields is None:
                    break
            for f in long_fields:
                if len(fields[f]) > LONG_TEXT:
                    long_text += len(fields[f])
            target: Any
            if head:
                target = {} if setitems else []
                _fill(run, target, items(fields))
                stack.append(target)
            else:
                _fill(run, stack[-1], items(fields))
            done += 1
        self.memo_len += done * writes
        self._memo_long_text += long_text + done * run.long_const
        if self._memo_structured < MAX_MEMO_STRUCTURED:
            structured = done * (run.memoized_tuples + (1 if head else 0))
            self._memo_structured = min(MAX_MEMO_STRUCTURED, self._memo_structured + structured)
        return done

    def _records(self, run: _Run, buf: bytes, i: int, stop: int, stack: list[Any]) -> int:
        """_full_memo_runs for records (a new dict with constant keys each) as one pipeline
        of C-level iterators, no bytecode per record; how many were applied (0: a text field
        is not UTF-8, left to the loop that finds which)."""
        assert run.keys is not None
        size = run.size
        count = (stop - i) // size
        if self._dropped(buf, stop):
            # APPENDS comes next and keeps none of them, and the memo keeps none (it keeps
            # nothing more): the records are never seen again. Only their text is decoded
            # (an error there is the handler's) and measured, as the memo counts it.
            long_text = 0
            try:
                for k, (a, b) in enumerate(run.texts):
                    raw = map(
                        buf.__getitem__,
                        map(slice, range(i + a, stop, size), range(i + b, stop, size)),
                    )
                    lengths = map(len, map(_DECODE_TEXT, raw))
                    if k in run.long_texts:
                        long_text += sum(filter(LONG_TEXT.__lt__, lengths))
                    else:
                        deque(lengths, 0)
            except UnicodeDecodeError:
                return 0
            self._count_records(run, count, long_text)
            return count
        region = memoryview(buf)[i:stop]
        columns: list[Any] = []  # per run: its fields, in _Run.order's groups
        if run.consts:
            columns.append(repeat(run.consts, count))
        if run.little is not None:
            columns.append(run.little.iter_unpack(region))
        if run.big is not None:
            columns.append(run.big.iter_unpack(region))
        long_text = 0
        if run.texts:
            texts: list[list[str]] = []
            try:
                for a, b in run.texts:
                    raw = map(
                        buf.__getitem__,
                        map(slice, range(i + a, stop, size), range(i + b, stop, size)),
                    )
                    texts.append(list(map(_DECODE_TEXT, raw)))
            except UnicodeDecodeError:
                return 0
            for k in run.long_texts:
                long_text += sum(filter(LONG_TEXT.__lt__, map(len, texts[k])))
            columns.append(zip(*texts, strict=True))
        fields = columns[0]
        for column in columns[1:]:
            fields = map(add, fields, column)
        stack.extend(map(dict, map(zip, repeat(run.keys), map(run.items, fields))))
        self._count_records(run, count, long_text)
        return count

    def _count_records(self, run: _Run, count: int, long_text: int) -> None:
        self.memo_len += count * (run.memoized + 1)
        self._memo_long_text += long_text + count * run.long_const
        if self._memo_structured < MAX_MEMO_STRUCTURED:
            self._memo_structured = min(MAX_MEMO_STRUCTURED, self._memo_structured + count)

    def _dropped(self, buf: bytes, stop: int) -> bool:
        """Whether the opcode at ``buf[stop]`` is an APPENDS that keeps nothing of its items
        (its list is full), so that items pushed before it are dropped unseen."""
        if stop >= len(buf) or buf[stop] != 0x65 or not self.metastack:
            return False
        below = self.metastack[-1]
        return bool(below) and type(below[-1]) is list and len(below[-1]) >= MAX_ITEMS

    def _exact_runs(
        self, run: _Run, consts: tuple[Any, ...], buf: bytes, i: int, stop: int, stack: list[Any]
    ) -> int:
        """Apply the runs in ``buf[i:stop]`` one by one; how many were applied (a run whose
        opcodes would take the general path stops them, none of it done)."""
        memo = self.memo
        memo_len = self.memo_len
        structured = self._memo_structured
        long_text = self._memo_long_text
        head, setitems, slots, keys = run.head, run.setitems, run.slots, run.keys
        done = 0
        fresh = head and setitems and run.pushed >> 1 <= MAX_ITEMS
        for j in range(i, stop, run.size):
            fields = self._fields(run, consts, buf, j)
            if fields is None:
                break
            target: Any
            if head:  # EMPTY_DICT/EMPTY_LIST, then MEMOIZE as the inline path does it
                if fresh:  # its items, as SETITEMS puts them in (all of them fit)
                    if keys is None:
                        it = iter(run.order(fields))
                        target = dict(zip(it, it, strict=False))
                    else:
                        target = dict(zip(keys, run.items(fields), strict=True))
                else:
                    target = {} if setitems else []
                    _fill(run, target, run.order(fields) if keys is None else run.items(fields))
                if len(memo) < MAX_MEMO:
                    if structured >= MAX_MEMO_STRUCTURED:
                        memo[memo_len] = _FORGOTTEN
                    else:
                        memo[memo_len] = target
                if structured < MAX_MEMO_STRUCTURED:
                    structured += 1
                memo_len += 1
            else:
                target = stack[-1]
                _fill(run, target, run.order(fields) if keys is None else run.items(fields))
            if slots is not None:  # the run's MEMOIZEs, as the inline MEMOIZE stores them
                size = len(memo)
                for value in slots(fields):
                    kind = type(value)
                    if kind is tuple:
                        if structured >= MAX_MEMO_STRUCTURED:
                            value = _FORGOTTEN
                        else:
                            structured += 1
                    elif kind is str and len(value) > LONG_TEXT:
                        long_text += len(value)
                        if long_text > MAX_MEMO_LONG_TEXT:
                            value = _FORGOTTEN
                    if size < MAX_MEMO or (size < MAX_MEMO_NAMES and kind is str):
                        memo[memo_len] = value
                        size += 1
                    memo_len += 1
            if head:
                stack.append(target)
            done += 1
        self.memo_len = memo_len
        self._memo_structured = structured
        self._memo_long_text = long_text
        return done

    def _inline_end(self) -> int:
        """How far into the reader's buffer the inline path may decode.

        Not past the end of the current FRAME (so the handlers see every opcode that could
        cross it), and nowhere when the reader models a file object's buffering.
        """
        r = self.r
        if self.view:
            return 0
        if self.frame_end is None:
            return len(r._buf)
        return max(0, min(len(r._buf), self.frame_end - r._base))

    def _frame_check(self, frame_end: int, pos: int) -> None:
        """After an opcode read in a FRAME that ends at ``frame_end``: did it cross the end?"""
        if self._frame_reset:
            self._frame_reset = False
            return
        here = self.r.tell()
        if pos < frame_end < here and self.result.frame_split is None:
            self.result.frame_split = "split"
        if self.frame_end == frame_end and here >= frame_end:
            self.frame_end = None  # the frame is used up

    # -- stack helpers -------------------------------------------------------------------------
    def push(self, value: Any) -> None:
        # Depth is checked every OPS_PER_CHECK opcodes. Handlers must not inline this as
        # self.stack.append(f()) when f pops to a MARK: that swaps self.stack.
        self.stack.append(value)

    def pop(self) -> Any:
        if not self.stack:
            raise PickleError("stack underflow")
        value = self.stack.pop()
        if value is MARK:
            raise PickleError("unexpected MARK on the stack")
        return value

    def top(self) -> Any:
        if not self.stack or self.stack[-1] is MARK:
            raise PickleError("stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.metastack:
            raise PickleError("no MARK to pop to")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    # -- arguments -----------------------------------------------------------------------------
    def _uint(self, n: int) -> int:
        return int.from_bytes(self.r.read(n), "little")

    def _payload(self, length: int, kind: str) -> Any:
        # bytes payloads are read into place past a file loader's buffer (_Unpickler_ReadInto);
        # text payloads go through its buffer (see StreamView)
        contiguous = kind == "bytes"
        if length < 0:
            raise PickleError(f"negative {kind} length")
        if length <= KEEP_BYTES:
            data = self._read_contiguous(length) if contiguous else self.r.read(length)
            if kind == "str":
                return data.decode("utf-8", "surrogatepass")
            return data
        start = self.r.tell()
        if contiguous:
            self._skip_contiguous(length)
        else:
            self.r.skip(length)
        if kind == "str":
            return Opaque(f"<str of {length} bytes>")
        return BytesRef(start, length)

    def _line(self) -> str | None:
        """A text argument (latin-1), or None for one longer than KEEP_BYTES (skipped)."""
        raw = self.r.readline_or_skip(KEEP_BYTES)
        return None if raw is None else raw.decode("latin-1")

    # -- constants -----------------------------------------------------------------------------
    def op_PROTO(self, pos: int) -> bool:
        proto = self.r.byte()
        if proto < 0 or proto > 5:
            raise PickleError(f"unsupported protocol {proto}")
        if self.result.protocol is None:
            self.result.protocol = proto
        return False

    def op_FRAME(self, pos: int) -> bool:
        # Frames only group opcodes for I/O: decoding from memory (pickle.loads) ignores them,
        # but a loader reading a file object (torch.load, pickle.load) buffers a frame and
        # drops its unread rest when an argument runs past it (see StreamView).
        length = self._uint(8)
        if self.view:
            cast(StreamView, self.r).frame(length)
            return False
        here = self.r.tell()
        old = self.frame_end
        if old is not None and here <= old < here + length and self.result.frame_split is None:
            self.result.frame_split = "split"  # a frame reaching past the one it sits in
        self.frame_end = here + length
        return False

    def op_STOP(self, pos: int) -> bool:
        self.result.result = self.pop() if self.stack else None
        return True

    def op_INT(self, pos: int) -> bool:
        text = self._line()
        self.push(Opaque("<long int>") if text is None else c_int(text))
        return False

    def op_BININT(self, pos: int) -> bool:
        self.push(int.from_bytes(self.r.read(4), "little", signed=True))
        return False

    def op_BININT1(self, pos: int) -> bool:
        self.stack.append(self.r.read(1)[0])
        return False

    def op_BININT2(self, pos: int) -> bool:
        self.push(self._uint(2))
        return False

    def op_LONG(self, pos: int) -> bool:
        text = self._line()
        self.push(Opaque("<long>") if text is None else c_long(text))
        return False

    def _long(self, n: int) -> None:
        size = self._uint(n)
        if size > 4096:
            self.r.skip(size)
            self.push(Opaque("<long>"))
            return
        self.push(int.from_bytes(self.r.read(size), "little", signed=True))

    def op_LONG1(self, pos: int) -> bool:
        self._long(1)
        return False

    def op_LONG4(self, pos: int) -> bool:
        self._long(4)
        return False

    def _data_line(self) -> bytes | None:
        return self.r.readline_or_skip(KEEP_BYTES)

    def op_STRING(self, pos: int) -> bool:
        raw = self._data_line()
        if raw is None:
            self.push(Opaque("<long string>"))
            return False
        if len(raw) < 2 or raw[:1] != raw[-1:] or raw[:1] not in (b"'", b'"'):
            raise PickleError("STRING argument is not quoted")
        # Python escapes, as the unpickler decodes them (codecs.escape_decode is pure).
        self.push(codecs.escape_decode(raw[1:-1])[0].decode("latin-1"))
        return False

    def op_BINSTRING(self, pos: int) -> bool:
        self.push(self._str8(self._uint(4)))
        return False

    def op_SHORT_BINSTRING(self, pos: int) -> bool:
        self.push(self._str8(self._uint(1)))
        return False

    def _str8(self, length: int) -> Any:
        value = self._payload(length, "str8")
        return value.decode("latin-1") if isinstance(value, bytes) else value

    def op_BINBYTES(self, pos: int) -> bool:
        self.push(self._payload(self._uint(4), "bytes"))
        return False

    def op_SHORT_BINBYTES(self, pos: int) -> bool:
        self.push(self._payload(self._uint(1), "bytes"))
        return False

    def op_BINBYTES8(self, pos: int) -> bool:
        self.push(self._payload(self._uint(8), "bytes"))
        return False

    def op_BYTEARRAY8(self, pos: int) -> bool:
        self.push(self._payload(self._uint(8), "bytes"))
        return False

    def op_NEXT_BUFFER(self, pos: int) -> bool:
        self.push(Opaque("<out-of-band buffer>"))
        return False

    def op_READONLY_BUFFER(self, pos: int) -> bool:
        self.top()
        return False

    def op_NONE(self, pos: int) -> bool:
        self.push(None)
        return False

    def op_NEWTRUE(self, pos: int) -> bool:
        self.push(True)
        return False

    def op_NEWFALSE(self, pos: int) -> bool:
        self.push(False)
        return False

    def op_UNICODE(self, pos: int) -> bool:
        raw = self._data_line()
        self.push(Opaque("<long string>") if raw is None else raw.decode("raw-unicode-escape"))
        return False

    def op_SHORT_BINUNICODE(self, pos: int) -> bool:
        self.stack.append(self.r.read(self.r.read(1)[0]).decode("utf-8", "surrogatepass"))
        return False

    def op_BINUNICODE(self, pos: int) -> bool:
        self.push(self._payload(self._uint(4), "str"))
        return False

    def op_BINUNICODE8(self, pos: int) -> bool:
        self.push(self._payload(self._uint(8), "str"))
        return False

    def op_FLOAT(self, pos: int) -> bool:
        text = self._line()
        self.push(Opaque("<long float>") if text is None else c_float(text))
        return False

    def op_BINFLOAT(self, pos: int) -> bool:
        self.push(struct.unpack(">d", self.r.read(8))[0])
        return False

    # -- containers ----------------------------------------------------------------------------
    def op_EMPTY_LIST(self, pos: int) -> bool:
        self.push([])
        return False

    def op_EMPTY_TUPLE(self, pos: int) -> bool:
        self.push(())
        return False

    def op_EMPTY_DICT(self, pos: int) -> bool:
        self.push({})
        return False

    def op_EMPTY_SET(self, pos: int) -> bool:
        self.push(PSet())
        return False

    def _extend(self, target: Any, items: list[Any]) -> None:
        if type(target) is Global or type(target) is Unresolved:
            target.uses |= USE_MUTATE  # .append/.extend/.add on an imported object
            return
        if isinstance(target, list):
            room = MAX_ITEMS - len(target)
            if room > 0:
                target.extend(items[:room])
        # appends to other objects call their .append/.extend: modeled as no-ops

    def op_APPEND(self, pos: int) -> bool:
        value = self.pop()
        self._extend(self.top(), [value])
        return False

    def op_APPENDS(self, pos: int) -> bool:
        items = self.pop_mark()
        self._extend(self.top(), items)
        return False

    def op_ADDITEMS(self, pos: int) -> bool:
        items = self.pop_mark()
        self._extend(self.top(), items)
        return False

    def op_LIST(self, pos: int) -> bool:
        self.push(self.pop_mark()[:MAX_ITEMS])
        return False

    def op_TUPLE(self, pos: int) -> bool:
        self.push(tuple(self.pop_mark()[:MAX_ITEMS]))
        return False

    def op_TUPLE1(self, pos: int) -> bool:
        self.push((self.pop(),))
        return False

    def op_TUPLE2(self, pos: int) -> bool:
        b = self.pop()
        a = self.pop()
        self.push((a, b))
        return False

    def op_TUPLE3(self, pos: int) -> bool:
        c = self.pop()
        b = self.pop()
        a = self.pop()
        self.push((a, b, c))
        return False

    def op_FROZENSET(self, pos: int) -> bool:
        self.push(PSet(self.pop_mark()[:MAX_ITEMS]))
        return False

    def _setitems(self, target: Any, items: list[Any]) -> None:
        if len(items) % 2:
            raise PickleError("odd number of items for SETITEMS/DICT")
        if type(target) is Global or type(target) is Unresolved:
            target.uses |= USE_MUTATE  # __setitem__ on an imported object (os.environ...)
            return
        if not isinstance(target, dict):
            return
        for i in range(0, len(items), 2):
            key = items[i]
            if len(target) < MAX_ITEMS and _hashable(key):
                target[key] = items[i + 1]

    def op_DICT(self, pos: int) -> bool:
        items = self.pop_mark()
        target: dict[Any, Any] = {}
        self._setitems(target, items)
        self.push(target)
        return False

    def op_SETITEM(self, pos: int) -> bool:
        value = self.pop()
        key = self.pop()
        self._setitems(self.top(), [key, value])
        return False

    def op_SETITEMS(self, pos: int) -> bool:
        items = self.pop_mark()
        self._setitems(self.top(), items)
        return False

    # -- stack and memo ------------------------------------------------------------------------
    def op_POP(self, pos: int) -> bool:
        if self.stack:
            self.stack.pop()
        else:  # like the unpickler: POP on an empty frame discards the MARK
            self.pop_mark()
        return False

    def op_DUP(self, pos: int) -> bool:
        self.push(self.top())
        return False

    def op_MARK(self, pos: int) -> bool:
        if len(self.metastack) >= MAX_STACK:
            raise _too_deep()
        self.metastack.append(self.stack)
        self.stack = []
        return False

    def op_POP_MARK(self, pos: int) -> bool:
        self.pop_mark()
        return False

    def _get(self, index: int) -> None:
        if index not in self.memo:
            if self.memo_len > len(self.memo):  # dropped entries (memo cap) stay unknown
                self.push(Opaque("<memo entry over the cap>"))
                return
            raise PickleError(f"memo key {index} not defined")
        self.push(self.memo[index])

    def _put(self, index: int) -> None:
        if index < 0:
            raise PickleError("negative memo key")
        value = self.top()
        if index > self._put_top:
            self._put_top = index
        kind = type(value)  # what it is, kept or not (as the inline MEMOIZE decides)
        if kind in _STRUCTURED:
            # Containers and calls are only needed to render calls and read small states;
            # past a budget the memo keeps a placeholder so memory stays bounded.
            if self._memo_structured >= MAX_MEMO_STRUCTURED:
                value = _FORGOTTEN
            else:
                self._memo_structured += 1
        elif kind is str and len(value) > LONG_TEXT:
            self._memo_long_text += len(value)
            if self._memo_long_text > MAX_MEMO_LONG_TEXT:
                value = _FORGOTTEN
        memo = self.memo
        size = len(memo)
        if index in memo:
            memo[index] = value
            return
        # the unpickler's memo_len counts every index set: MEMOIZE writes at memo_len, so it
        # is counted even for entries this machine does not keep
        self.memo_len += 1
        if size < MAX_MEMO:
            memo[index] = value
        elif size < MAX_MEMO_NAMES and kind in _NAME_TYPES:
            memo[index] = value  # past the cap only what names are made of is kept

    def op_GET(self, pos: int) -> bool:
        text = self._line()
        if text is None:  # an index written with more than KEEP_BYTES characters
            self.push(Opaque("<memo entry of a huge index>"))
            return False
        self._get(int(_c_string(text)))
        return False

    def op_BINGET(self, pos: int) -> bool:
        self._get(self.r.read(1)[0])
        return False

    def op_LONG_BINGET(self, pos: int) -> bool:
        self._get(self._uint(4))
        return False

    def op_PUT(self, pos: int) -> bool:
        text = self._line()
        if text is None:
            self.top()  # still needs a value on the stack, like the unpickler
            return False
        self._put(int(_c_string(text)))
        return False

    def op_BINPUT(self, pos: int) -> bool:
        self._put(self.r.read(1)[0])
        return False

    def op_LONG_BINPUT(self, pos: int) -> bool:
        self._put(self._uint(4))
        return False

    def op_MEMOIZE(self, pos: int) -> bool:
        self._put(self.memo_len)
        return False

    # -- imports and calls ---------------------------------------------------------------------
    def _import(self, module: Any, name: Any, pos: int, opcode: str) -> Global | Unresolved:
        imp: Global | Unresolved
        if isinstance(module, str) and isinstance(name, str):
            imp = Global(module, name, pos, opcode)
        else:
            imp = Unresolved(
                f"{opcode} with computed operands ({_short(module)}, {_short(name)})",
                pos,
                opcode,
            )
        self.result.imports.append(imp)
        return imp

    def op_GLOBAL(self, pos: int) -> bool:
        module = self._line()
        name = self._line()
        self.push(self._import(_long_name(module), _long_name(name), pos, "GLOBAL"))
        return False

    def op_STACK_GLOBAL(self, pos: int) -> bool:
        name = self.pop()
        module = self.pop()
        self.push(self._import(module, name, pos, "STACK_GLOBAL"))
        return False

    def op_INST(self, pos: int) -> bool:
        module = self._line()
        name = self._line()
        cls = self._import(_long_name(module), _long_name(name), pos, "INST")
        args = tuple(self.pop_mark()[:MAX_ITEMS])
        # _instantiate: klass(*args), or klass.__new__ for a class without arguments. Which one
        # depends on what the global is at load time, so it counts as a call.
        self.push(self._call(cls, args, pos, USE_CALL))
        return False

    def op_OBJ(self, pos: int) -> bool:
        items = self.pop_mark()
        if not items:
            raise PickleError("OBJ without a class")
        self.push(self._call(items[0], tuple(items[1:MAX_ITEMS]), pos, USE_CALL))
        return False

    def op_NEWOBJ(self, pos: int) -> bool:
        args = self.pop()
        cls = self.pop()
        self.push(self._call(cls, args, pos, USE_CONSTRUCT))
        return False

    def op_NEWOBJ_EX(self, pos: int) -> bool:
        kwargs = self.pop()
        args = self.pop()
        cls = self.pop()
        self.push(self._call(cls, args, pos, USE_CONSTRUCT, kwargs))
        return False

    def op_REDUCE(self, pos: int) -> bool:
        args = self.pop()
        func = self.pop()
        self.push(self._call(func, args, pos, USE_CALL))
        return False

    def _call(self, func: Any, args: Any, pos: int, use: int, kwargs: Any = None) -> Any:
        kind = type(func)
        if kind is Global and use == USE_CALL and type(args) is tuple:
            modelled = self._modelled(func, args, pos)
            if modelled is not None:
                return modelled
        call = Call(func, args, pos, kwargs)
        if kind is Global or kind is Unresolved:
            func.uses |= use
            if len(func.calls) < MAX_CALL_SAMPLES:
                func.calls.append(call)
            if type(args) is tuple:
                for i, arg in enumerate(args[:8]):
                    _hand_over(func, arg, i)
            if type(kwargs) is dict:
                for arg in list(kwargs.values())[:8]:
                    _hand_over(func, arg, KWARGS_POSITION)
            if kind is Global:
                qualname = func.module + "." + func.name
                if qualname in NESTED_LOADERS:
                    self._nested(func, args, pos)
                elif func.module == "torch._utils" and func.name.startswith("_rebuild_tensor"):
                    self._count_tensor(args)
        elif kind not in _SCALARS and kind is not BytesRef:
            # The callee is computed while loading: which callable runs is not known here.
            res = self.result
            res.computed_total += 1
            if len(res.computed) < MAX_COMPUTED:
                res.computed.append(call)
        return call

    def _modelled(self, func: Global, args: tuple[Any, ...], pos: int) -> Any:
        """Evaluate the few lookups whose result is known from constant arguments."""
        name = func.name
        if name == "getattr" and func.module in _BUILTINS:
            # getattr(ZoneInfo, '_unpickle') is how Python pickles methods and nested names:
            # the same lookup as a protocol 4 dotted name, so it is judged as that import.
            if len(args) == 2 and type(args[0]) is Global and type(args[1]) is str:
                func.uses |= USE_MODELLED
                owner = args[0]
                attr = Global(owner.module, f"{owner.name}.{args[1]}", pos, "getattr")
                self.result.imports.append(attr)
                return attr
            if (
                len(args) == 2
                and type(args[0]) is Call
                and type(args[1]) is str
                and not args[1].startswith("_")
            ):
                # a bound method (pickled as getattr(obj, 'name')): the result is a value
                # computed while loading, and calling it is judged as such (MLS104); private
                # and dunder attributes (__globals__, __class__...) stay critical
                func.uses |= USE_MODELLED
                return Call(func, args, pos)
        elif name == "_ufunc_reconstruct" and func.module in _NUMPY_CORE:
            # old NumPy pickles name ufuncs as _ufunc_reconstruct('numpy', 'add'): an import
            if len(args) == 2 and type(args[0]) is str and type(args[1]) is str:
                func.uses |= USE_MODELLED
                imp = Global(args[0], args[1], pos, "_ufunc_reconstruct")
                self.result.imports.append(imp)
                return imp
        elif (name == "type" and func.module in _BUILTINS and len(args) == 1) and type(
            args[0]
        ) in _SCALARS:  # type(None): the type of a constant
            func.uses |= USE_MODELLED
            return Call(func, args, pos)
        return None

    def _count_tensor(self, args: Any) -> None:
        # _rebuild_tensor_v2(storage, storage_offset, size, stride, ...): size is a tuple
        if isinstance(args, tuple) and len(args) > 2 and isinstance(args[2], tuple):
            elements = 1
            for n in args[2]:
                elements *= n if isinstance(n, int) and n >= 0 else 0
            self.result.tensors += 1
            self.result.tensor_elements += elements

    def _nested(self, loader: Global, args: Any, pos: int) -> None:
        data = const_bytes(args[0]) if isinstance(args, tuple) and args else None
        if data is None:
            loader.uses |= USE_UNMODELLED
            return
        self.result.nested.append(NestedPayload(loader.qualname, data, pos))

    def op_BUILD(self, pos: int) -> bool:
        state = self.pop()
        obj = self.top()
        kind = type(obj)
        if kind is Call:
            if obj.state is None:
                obj.state = state
            func = obj.func
            if type(func) is Global or type(func) is Unresolved:
                func.uses |= USE_STATE
                if type(state) is tuple:
                    for i, item in enumerate(state[:8]):
                        _hand_over(func, item, STATE_POSITION + i)
        elif kind is Global or kind is Unresolved:
            obj.uses |= USE_MUTATE  # __setstate__ or setattr on an imported object
        if self.hooks.after_build is not None:
            before = self.r.tell()
            self.hooks.after_build(obj, self.r, self)
            if self.r.tell() != before:
                # the container read data of its own (joblib's arrays, written past the
                # pickler's framing): frame boundaries say nothing about it
                self.frame_end = None
                self._frame_reset = True
        return False

    def op_PERSID(self, pos: int) -> bool:
        self.result.persistent_ids += 1
        self.push(Opaque(f"<persistent id {(self._line() or '')[:40]!r}>"))
        return False

    def op_BINPERSID(self, pos: int) -> bool:
        self.pop()
        self.result.persistent_ids += 1
        self.push(Opaque("<persistent id>"))
        return False

    def _ext(self, code: int, pos: int, opcode: str) -> None:
        imp = Unresolved(f"{opcode} extension code {code} (copyreg registry)", pos, opcode)
        self.result.imports.append(imp)
        self.push(imp)

    def op_EXT1(self, pos: int) -> bool:
        self._ext(self._uint(1), pos, "EXT1")
        return False

    def op_EXT2(self, pos: int) -> bool:
        self._ext(self._uint(2), pos, "EXT2")
        return False

    def op_EXT4(self, pos: int) -> bool:
        self._ext(int.from_bytes(self.r.read(4), "little", signed=True), pos, "EXT4")
        return False


# The opcode handlers, by opcode: one table for every machine (building bound methods per
# machine cost ~25 us, a tenth of the analysis of a small pickle).
_HANDLERS: dict[int, Callable[[Machine, int], bool]] = {
    code: getattr(Machine, "op_" + name)
    for code, name in OPCODE_NAMES.items()
    if hasattr(Machine, "op_" + name)
}


_STRTOL = re.compile(r"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_LONG_MIN = -(1 << 63)
_LONG_MAX = (1 << 63) - 1
_MAX_DIGITS = 4300  # CPython's int() limit for decimal text (sys.get_int_max_str_digits)


def _c_string(text: str) -> str:
    """The text as C code reads it: up to the first NUL (_pickle.c parses C strings)."""
    cut = text.find("\0")
    return text if cut < 0 else text[:cut]


def c_int(text: str) -> Any:
    """INT's argument as _pickle.c's load_int reads it.

    C ``strtol(s, &end, 0)`` first (so ``010`` is octal 8 and ``0x1f`` hex), accepted when it
    stops at the newline or a NUL, and a two-character ``0``/``1`` is a bool (``00``, ``01``,
    ``+1``, `` 0``...); otherwise ``PyLong_FromString(s, NULL, 0)``, which is ``int(s, 0)``
    (underscores, ``0o``/``0b``, surrounding whitespace).
    """
    cut = _c_string(text)
    match = _STRTOL.match(cut)
    if match is not None and match.end() == len(cut):
        sign, digits = match.groups()
        if digits[:2] in ("0x", "0X"):
            value = int(digits[2:], 16)
        elif digits[0] == "0":
            value = int(digits, 8) if len(digits) > 1 else 0
        else:
            value = int(digits) if len(digits) <= _MAX_DIGITS else _LONG_MAX + 1
        if sign == "-":
            value = -value
        if _LONG_MIN <= value <= _LONG_MAX:  # else strtol overflows: the fallback below
            return bool(value) if len(text) == 2 and value in (0, 1) else value
    if len(cut) > _MAX_DIGITS:
        return Opaque("<long int>")
    return int(cut, 0)


def c_long(text: str) -> Any:
    """LONG's argument as load_long reads it: one trailing ``L`` dropped, then int(s, 0)."""
    if text.endswith("L"):
        text = text[:-1]
    cut = _c_string(text)
    if len(cut) > _MAX_DIGITS:
        return Opaque("<long>")
    return int(cut, 0)


def c_float(text: str) -> float:
    """FLOAT's argument as the unpicklers read it, whichever accepts it.

    _pickle.c's load_float takes ``PyOS_string_to_double`` up to the newline or a NUL (no
    surrounding whitespace, no underscores, an overflow is an error); pickle.py's, which
    joblib's unpickler runs, takes ``float()`` of the whole line (whitespace and underscores
    allowed, no NUL). A decoder must not stop where either goes on.
    """
    cut = _c_string(text)
    if cut == cut.strip() and "_" not in cut:
        try:
            value = float(cut)
        except ValueError:
            pass
        else:
            if value not in (_INF, -_INF) or "inf" in cut.lower():
                return value
    return float(text)  # pickle.py (raises ValueError like it)


_INF = float("inf")


def _long_name(text: str | None) -> Any:
    """A GLOBAL/INST line: None (longer than KEEP_BYTES) becomes an unresolvable operand."""
    return Opaque("<name longer than 1 MiB>") if text is None else text


def _too_deep() -> LimitExceeded:
    # Not corruption: the unpickler would go on. What was seen so far is still judged, and
    # the rest is reported as not scanned (MLS904).
    return LimitExceeded(
        "max-pickle-stack",
        f"the pickle's stack and marks are deeper than {MAX_STACK} items",
    )


def _hand_over(func: Global | Unresolved, arg: Any, position: int) -> None:
    """Record that ``arg`` is handed to a call of ``func`` at ``position``."""
    kind = type(arg)
    if kind is Global or kind is Unresolved:
        arg.uses |= USE_ARG
        passed = arg.passed
        if len(passed) < MAX_PASSED:
            if type(func) is Global:
                passed[(func.module, func.name, position)] = None
            else:
                passed[("", "<unresolved>", position)] = None
        else:  # too many different callees to follow: assume one of them calls it
            arg.uses |= USE_CALL
    elif kind is Call or kind is Opaque:
        samples = func.computed_args.setdefault(position, [])
        if len(samples) < MAX_COMPUTED_ARGS:
            samples.append(arg)
        elif len(samples) == MAX_COMPUTED_ARGS:
            samples.append(_MANY)  # more than kept: a judge cannot prove them all harmless


_DECODERS = {
    "base64.b64decode",
    "base64.standard_b64decode",
    "base64.urlsafe_b64decode",
    "binascii.a2b_base64",
    "binascii.unhexlify",
    "binascii.a2b_hex",
    "bytes.fromhex",
    "builtins.bytes.fromhex",
    "zlib.decompress",
    "codecs.decode",
    "_codecs.decode",
    "codecs.encode",
    "_codecs.encode",
    "io.BytesIO",
    "_io.BytesIO",
    "builtins.bytes",
    "builtins.bytearray",
    "__builtin__.bytes",
    "__builtin__.bytearray",
}


def const_bytes(value: Any, depth: int = 0) -> bytes | BytesRef | None:
    """The bytes a value evaluates to, if it is built from constants by harmless decoders.

    Nested payloads are often wrapped (``pickle.loads(base64.b64decode('...'))``, protocol 2's
    ``_codecs.encode(str, 'latin1')``, ``torch.load(io.BytesIO(...))``); these few pure
    functions are evaluated here, on constants only, so the inner pickle can be scanned.
    """
    import base64
    import binascii
    import zlib

    if isinstance(value, bytes | BytesRef):
        return value
    if isinstance(value, str):
        return value.encode("latin-1", "replace")
    if depth > 8 or not isinstance(value, Call) or not isinstance(value.func, Global):
        return None
    name = value.func.qualname
    if name not in _DECODERS or not isinstance(value.args, tuple) or not value.args:
        return None
    rest = value.args[1:]
    if name.endswith(("bytes", "bytearray")) and isinstance(value.args[0], list):
        items = value.args[0]
        return bytes(i for i in items if isinstance(i, int) and 0 <= i < 256)
    inner = const_bytes(value.args[0], depth + 1)
    if not isinstance(inner, bytes):
        return inner
    try:
        if name.endswith(("b64decode", "a2b_base64")):
            if "urlsafe" in name:
                return base64.urlsafe_b64decode(inner)
            return base64.b64decode(inner)
        if name.endswith(("unhexlify", "a2b_hex", "fromhex")):
            return binascii.unhexlify(inner.replace(b" ", b""))
        if name == "zlib.decompress":
            out = zlib.decompressobj().decompress(inner, KEEP_BYTES * 64)
            return out
        if name.endswith("decode"):
            codec = rest[0] if rest and isinstance(rest[0], str) else "utf-8"
            if codec in ("base64", "base_64"):
                return base64.b64decode(inner)
            if codec in ("hex", "hex_codec"):
                return binascii.unhexlify(inner)
            return inner
    except (ValueError, binascii.Error, zlib.error):
        return None
    return inner


class StreamView(ByteReader):
    """Bytes read the way CPython's C unpickler reads a file object.

    ``pickle.loads`` decodes from memory, where FRAME changes nothing. ``torch.load`` and
    ``pickle.load`` read a file object: a FRAME is read into a buffer (``read(n)``; with a
    ``peek``-able file only frames of ``threshold`` bytes or more), and an argument that runs
    past the buffered bytes is read afresh from the file, the rest of the buffer dropped
    (``_Unpickler_ReadImpl``; a text line likewise, ``_Unpickler_Readline``). Bytes payloads
    are copied across the boundary instead (``_Unpickler_ReadInto``). A crafted file can
    so show a decoder reading from memory one program and the loader another.
    """

    __slots__ = ("_end", "threshold")

    def __init__(self, data: bytes, start: int, threshold: int) -> None:
        super().__init__(io.BytesIO(data), len(data))
        self._base = start  # offsets are the outer stream's
        self._end: int | None = None  # end of the buffered frame, if one is buffered
        self.threshold = threshold

    def _spill(self, n: int) -> None:
        end = self._end
        if end is not None:
            here = self.tell()
            if here + n > end:
                if here < end:
                    super().skip(end - here)  # the unread rest of the buffer is dropped
                self._end = None

    def read(self, n: int) -> bytes:
        self._spill(n)
        return super().read(n)

    def byte(self) -> int:
        self._spill(1)
        return super().byte()

    def readline(self, limit: int = 1 << 16) -> bytes:
        end = self._end
        if end is not None:
            here = self.tell()
            if b"\n" not in self.peek(end - here):
                super().skip(end - here)  # readline() from the file, past the buffer
                self._end = None
        return super().readline(limit)

    def skip(self, n: int) -> None:
        self._spill(n)
        super().skip(n)

    def read_contiguous(self, n: int) -> bytes:
        data = super().read(n)
        if self._end is not None and self.tell() >= self._end:
            self._end = None
        return data

    def skip_contiguous(self, n: int) -> None:
        super().skip(n)
        if self._end is not None and self.tell() >= self._end:
            self._end = None

    def frame(self, length: int) -> None:
        here = self.tell()
        end = self._end
        if end is not None and here + length <= end:
            return  # the frame lies in the buffered bytes: nothing is read
        if end is not None and here < end:
            super().skip(end - here)
        if len(self.peek(length)) < length:
            raise Truncated("stream ends inside a FRAME")
        self._end = self.tell() + length if length >= self.threshold else None


# A peek()-able file (open()) serves a frame from its peek() unless the frame is larger than
# what peek() returns (at most io.DEFAULT_BUFFER_SIZE): those are buffered like BytesIO's.
FILE_BUFFER = 8192
MAX_VIEW_BYTES = 64 << 20  # a pickle re-read to be decoded the way file loaders read it


def run_pickle(
    reader: ByteReader, budget: Budget, hooks: PickleHooks | None = None
) -> PickleResult:
    """Analyse one pickle program starting at the reader's position.

    When FRAME boundaries split an argument, the program is also decoded the two ways the C
    unpickler reads file objects (``io.BytesIO``, as torch.load does: every frame buffered;
    ``open()``: frames larger than what its peek() returns buffered), and what those readings
    import and call is added to the result.
    """
    res = Machine(reader, budget, hooks).run()
    if res.frame_split is not None and res.limit is None:
        _file_readings(reader, res, budget, hooks)
    return res


def _file_readings(
    reader: ByteReader, res: PickleResult, budget: Budget, hooks: PickleHooks | None
) -> None:
    data = None
    if reader.seekable:
        raw = reader.raw
        here = raw.tell()
        try:
            raw.seek(reader.origin + res.start)
            data = raw.read(MAX_VIEW_BYTES)
        finally:
            raw.seek(here)
    if data is None:
        res.frame_split = "unchecked"
        return
    for threshold in (0, FILE_BUFFER):
        other = Machine(StreamView(data, res.start, threshold), budget, hooks).run()
        res.imports.extend(other.imports)
        res.nested.extend(other.nested)
        res.computed.extend(other.computed[: MAX_COMPUTED - len(res.computed)])
        res.computed_total += other.computed_total
        if other.limit is not None:
            res.limit = other.limit
            return


HIDDEN_WINDOW = 1 << 20  # bytes after the junk searched for hidden pickles
MAX_HIDDEN_TRIES = 64


def hidden_pickles(
    reader: ByteReader, budget: Budget, hooks: PickleHooks | None = None
) -> list[PickleResult]:
    """Pickles hidden behind junk that follows a STOP.

    ``pickle.load`` called again on the stream stops at the junk, but a loader that seeks (to
    a stored offset, past a header it knows) runs what lies behind. Every PROTO header in the
    next HIDDEN_WINDOW bytes is tried as the start of a program; those that run to STOP and
    import something are returned (their offsets are the stream's), to be judged like any.
    """
    base = reader.tell()
    window = reader.peek(HIDDEN_WINDOW)
    found: list[PickleResult] = []
    pos = 0
    for _ in range(MAX_HIDDEN_TRIES):
        i = window.find(b"\x80", pos)
        if i < 0 or i + 1 >= len(window):
            break
        pos = i + 1
        if window[i + 1] > 5:
            continue
        sub = ByteReader(io.BytesIO(window[i:]), len(window) - i)
        sub._base = base + i  # offsets of the candidate are the outer stream's
        res = Machine(sub, budget, hooks).run()
        if res.end is not None and res.imports:
            found.append(res)
            pos = res.end - base
    return found


# -- rendering --------------------------------------------------------------------------------
def _short(value: Any) -> str:
    return render(value, budget=40)


def render(value: Any, budget: int = 160, depth: int = 0) -> str:
    """A short pseudo-Python rendering of a symbolic value (``os.system('echo x')``)."""
    text = _render(value, depth)
    return text if len(text) <= budget else text[: budget - 3] + "..."


def _render(value: Any, depth: int) -> str:
    if depth > 4:
        return "..."
    d = depth + 1
    if isinstance(value, Global):
        return value.qualname
    if isinstance(value, Unresolved):
        return f"<{value.detail}>"
    if isinstance(value, Call):
        func = _render(value.func, d)
        args = value.args
        parts = (
            [_render(a, d) for a in args] if isinstance(args, tuple) else ["*" + _render(args, d)]
        )
        if isinstance(value.kwargs, dict):
            parts += [f"{k}={_render(v, d)}" for k, v in list(value.kwargs.items())[:8]]
        return f"{func}({', '.join(parts)})"
    if isinstance(value, BytesRef):
        return f"<{value.length} bytes>"
    if isinstance(value, Opaque):
        return value.label
    if isinstance(value, str):
        return repr(value if len(value) <= 120 else value[:117] + "...")
    if isinstance(value, bytes):
        return repr(value if len(value) <= 60 else value[:57] + b"...")
    if isinstance(value, PSet):
        return "{" + ", ".join(_render(v, d) for v in value[:8]) + "}"
    if isinstance(value, list):
        more = ", ..." if len(value) > 8 else ""
        return "[" + ", ".join(_render(v, d) for v in value[:8]) + more + "]"
    if isinstance(value, tuple):
        inner = ", ".join(_render(v, d) for v in value[:8])
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, dict):
        items = list(value.items())[:8]
        return "{" + ", ".join(f"{_render(k, d)}: {_render(v, d)}" for k, v in items) + "}"
    return repr(value)
