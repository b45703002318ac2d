"""Static pickle analysis: walk every opcode of protocols 0-5 without unpickling anything.

The standard library's :mod:`pickletools` describes the opcodes but its ``genops`` reads every
argument into memory (a 4 GiB ``BINBYTES8`` payload included) and stops at the first error.
This module decodes opcodes itself over a :class:`~mlsec.formats.streams.ByteReader`: payloads
larger than :data:`KEEP_BYTES` are skipped (seeked over in files), and a small symbolic
machine tracks the stack and memo so every import (GLOBAL, STACK_GLOBAL, INST) and every call
(REDUCE, OBJ, NEWOBJ, NEWOBJ_EX, INST) is resolved to a module and name even when the names
travel through MEMOIZE/PUT/GET, DUP or POP. Nothing is ever imported or called.

Container formats plug in through :class:`PickleHooks` (joblib writes raw array bytes in the
middle of its pickle stream; the hook skips them exactly like joblib's unpickler reads them).
"""

from __future__ import annotations

import pickletools
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlsec.formats.streams import Budget, ByteReader, Truncated

KEEP_BYTES = 1 << 20  # payloads up to this size are kept (rendering, nested pickles)
MAX_ITEMS = 256  # items kept per container (enough to render and to read small states)
MAX_STACK = 1_000_000
MAX_MEMO = 1_000_000
OPS_PER_CHECK = 4096

# Callables that deserialize their argument again: the bytes they receive are scanned too.
NESTED_LOADERS = frozenset(
    {
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


class PickleError(Exception):
    """The opcode stream is malformed (invalid opcode, stack underflow, bad argument)."""


# -- the symbolic values on the stack ----------------------------------------------------------
class Mark:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<mark>"


MARK = Mark()


@dataclass(eq=False)
class Global:
    """An imported object: ``module`` and ``name`` exactly as written in the pickle."""

    module: str
    name: str
    offset: int
    opcode: str
    calls: list[Call] = field(default_factory=list)

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False)
class Unresolved:
    """An import whose module or name is not a constant string (computed, or an EXT code)."""

    detail: str
    offset: int
    opcode: str
    calls: list[Call] = field(default_factory=list)


@dataclass(eq=False)
class Call:
    """The result of calling ``func`` with ``args`` (REDUCE/NEWOBJ/OBJ/INST)."""

    func: Any
    args: Any
    offset: int
    kwargs: Any = None
    state: Any = None


@dataclass(eq=False)
class BytesRef:
    """A payload too large to keep: where it is in the stream and how long it is."""

    start: int
    length: int


@dataclass(eq=False)
class Opaque:
    """Something the machine does not model (persistent ids, out-of-band buffers)."""

    label: str


class PSet(list[Any]):
    """A set or frozenset under construction (kept as a list: items may be unhashable)."""


@dataclass
class NestedPayload:
    """Bytes handed to a deserializer inside the pickle (``pickle.loads(b'...')``)."""

    loader: str
    data: bytes | BytesRef
    offset: int


@dataclass
class PickleResult:
    """What one pickle (one PROTO..STOP program) imports and calls."""

    start: int
    end: int | None = None  # offset after STOP; None if the stream broke first
    protocol: int | None = None
    ops: int = 0
    imports: list[Global | Unresolved] = field(default_factory=list)
    nested: list[NestedPayload] = field(default_factory=list)
    error: str | None = None
    error_offset: int | None = None
    persistent_ids: int = 0
    result: Any = None  # what STOP returned


@dataclass
class PickleHooks:
    """Container-specific behaviour at BUILD (joblib inline arrays)."""

    after_build: Callable[[Any, ByteReader, Machine], None] | None = None


_OPS = {op.code.encode("latin-1")[0]: op for op in pickletools.opcodes}


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return not isinstance(value, Global | Unresolved | Call | BytesRef | Opaque)


class Machine:
    """Runs one pickle program symbolically over a :class:`ByteReader`."""

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
        self.result = PickleResult(start=reader.tell())
        self._dispatch: dict[int, Callable[[int], bool]] = {}
        for code, op in _OPS.items():
            method = getattr(self, "op_" + op.name, None)
            if method is not None:
                self._dispatch[code] = method

    # -- driver ------------------------------------------------------------------------------
    def run(self) -> PickleResult:
        """Execute until STOP; errors are recorded in the result, never raised."""
        r = self.r
        dispatch = self._dispatch
        res = self.result
        ops = 0
        try:
            while True:
                pos = r.tell()
                code = r.byte()
                if code < 0:
                    raise Truncated("stream ends before STOP")
                handler = dispatch.get(code)
                if handler is None:
                    raise PickleError(f"invalid opcode 0x{code:02x}")
                ops += 1
                if ops % OPS_PER_CHECK == 0:
                    self.budget.spend_ops(OPS_PER_CHECK)
                if handler(pos):
                    res.end = r.tell()
                    break
        except (PickleError, Truncated) as exc:
            res.error = str(exc)
            res.error_offset = r.tell()
        except (ValueError, OverflowError, UnicodeDecodeError, RecursionError) as exc:
            res.error = f"malformed argument: {exc}"
            res.error_offset = r.tell()
        finally:
            self.budget.spend_ops(ops % OPS_PER_CHECK)
            res.ops = ops
        return res

    # -- stack helpers -------------------------------------------------------------------------
    def push(self, value: Any) -> None:
        if len(self.stack) >= MAX_STACK:
            raise PickleError(f"stack deeper than {MAX_STACK} items")
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
        if length < 0:
            raise PickleError(f"negative {kind} length")
        if length <= KEEP_BYTES:
            data = self.r.read(length)
            if kind == "str":
                return data.decode("utf-8", "surrogatepass")
            return data
        start = self.r.tell()
        self.r.skip(length)
        if kind == "str":
            return Opaque(f"<str of {length} bytes>")
        return BytesRef(start, length)

    def _line(self) -> str:
        return self.r.readline().decode("latin-1")

    # -- constants -----------------------------------------------------------------------------
    def op_PROTO(self, pos: int) -> bool:
        proto = self.r.byte()
        if proto < 0 or proto > 5:
            raise PickleError(f"unsupported protocol {proto}")
        if self.result.protocol is None:
            self.result.protocol = proto
        return False

    def op_FRAME(self, pos: int) -> bool:
        self.r.read(8)  # frames only group opcodes for I/O; decoding ignores them
        return False

    def op_STOP(self, pos: int) -> bool:
        self.result.result = self.pop() if self.stack else None
        return True

    def op_INT(self, pos: int) -> bool:
        text = self._line()
        if text in ("00", "01"):
            self.push(text == "01")
        else:
            self.push(int(text))
        return False

    def op_BININT(self, pos: int) -> bool:
        self.push(int.from_bytes(self.r.read(4), "little", signed=True))
        return False

    def op_BININT1(self, pos: int) -> bool:
        self.push(self._uint(1))
        return False

    def op_BININT2(self, pos: int) -> bool:
        self.push(self._uint(2))
        return False

    def op_LONG(self, pos: int) -> bool:
        text = self._line().rstrip("L")
        self.push(int(text) if len(text) < 4300 else Opaque("<long>"))
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
        text = raw.decode("latin-1")
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            text = text[1:-1]
        self.push(text)
        return False

    def op_BINSTRING(self, pos: int) -> bool:
        self.push(self._str8(self._uint(4)))
        return False

    def op_SHORT_BINSTRING(self, pos: int) -> bool:
        self.push(self._str8(self._uint(1)))
        return False

    def _str8(self, length: int) -> Any:
        value = self._payload(length, "bytes")
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
        self.push(self._payload(self._uint(1), "str"))
        return False

    def op_BINUNICODE(self, pos: int) -> bool:
        self.push(self._payload(self._uint(4), "str"))
        return False

    def op_BINUNICODE8(self, pos: int) -> bool:
        self.push(self._payload(self._uint(8), "str"))
        return False

    def op_FLOAT(self, pos: int) -> bool:
        self.push(float(self._line()))
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
        if self.stack and self.stack[-1] is MARK:
            self.pop_mark()
        else:
            self.pop()
        return False

    def op_DUP(self, pos: int) -> bool:
        self.push(self.top())
        return False

    def op_MARK(self, pos: int) -> bool:
        if len(self.metastack) >= MAX_STACK:
            raise PickleError("too many nested MARKs")
        self.metastack.append(self.stack)
        self.stack = []
        return False

    def op_POP_MARK(self, pos: int) -> bool:
        self.pop_mark()
        return False

    def _get(self, index: int) -> None:
        if index not in self.memo:
            if len(self.memo) >= MAX_MEMO:  # dropped entries (memo cap) stay unknown
                self.push(Opaque("<memo entry over the cap>"))
                return
            raise PickleError(f"memo key {index} not defined")
        self.push(self.memo[index])

    def _put(self, index: int) -> None:
        if index < 0:
            raise PickleError("negative memo key")
        value = self.top()
        if len(self.memo) < MAX_MEMO or index in self.memo:
            self.memo[index] = value

    def op_GET(self, pos: int) -> bool:
        self._get(int(self._line()))
        return False

    def op_BINGET(self, pos: int) -> bool:
        self._get(self._uint(1))
        return False

    def op_LONG_BINGET(self, pos: int) -> bool:
        self._get(self._uint(4))
        return False

    def op_PUT(self, pos: int) -> bool:
        self._put(int(self._line()))
        return False

    def op_BINPUT(self, pos: int) -> bool:
        self._put(self._uint(1))
        return False

    def op_LONG_BINPUT(self, pos: int) -> bool:
        self._put(self._uint(4))
        return False

    def op_MEMOIZE(self, pos: int) -> bool:
        self._put(len(self.memo))
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
        self.push(self._import(module, name, pos, "GLOBAL"))
        return False

    def op_STACK_GLOBAL(self, pos: int) -> bool:
        name = self.pop()
        module = self.pop()
        self.push(self._import(module, name, pos, "STACK_GLOBAL"))
        return False

    def op_INST(self, pos: int) -> bool:
        module = self._line()
        name = self._line()
        cls = self._import(module, name, pos, "INST")
        args = tuple(self.pop_mark()[:MAX_ITEMS])
        self.push(self._call(cls, args, pos))
        return False

    def op_OBJ(self, pos: int) -> bool:
        items = self.pop_mark()
        if not items:
            raise PickleError("OBJ without a class")
        self.push(self._call(items[0], tuple(items[1:MAX_ITEMS]), pos))
        return False

    def op_NEWOBJ(self, pos: int) -> bool:
        args = self.pop()
        cls = self.pop()
        self.push(self._call(cls, args, pos))
        return False

    def op_NEWOBJ_EX(self, pos: int) -> bool:
        kwargs = self.pop()
        args = self.pop()
        cls = self.pop()
        self.push(self._call(cls, args, pos, kwargs))
        return False

    def op_REDUCE(self, pos: int) -> bool:
        args = self.pop()
        func = self.pop()
        self.push(self._call(func, args, pos))
        return False

    def _call(self, func: Any, args: Any, pos: int, kwargs: Any = None) -> Call:
        call = Call(func, args, pos, kwargs)
        if isinstance(func, Global | Unresolved):
            if len(func.calls) < 8:
                func.calls.append(call)
            if isinstance(func, Global) and func.qualname in NESTED_LOADERS:
                self._nested(func.qualname, args, pos)
        return call

    def _nested(self, loader: str, args: Any, pos: int) -> None:
        if not isinstance(args, tuple) or not args:
            return
        data = const_bytes(args[0])
        if data is not None:
            self.result.nested.append(NestedPayload(loader, data, pos))

    def op_BUILD(self, pos: int) -> bool:
        state = self.pop()
        obj = self.top()
        if isinstance(obj, Call) and obj.state is None:
            obj.state = state
        if self.hooks.after_build is not None:
            self.hooks.after_build(obj, self.r, self)
        return False

    def op_PERSID(self, pos: int) -> bool:
        self.result.persistent_ids += 1
        self.push(Opaque(f"<persistent id {self._line()[:40]!r}>"))
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


def run_pickle(
    reader: ByteReader, budget: Budget, hooks: PickleHooks | None = None
) -> PickleResult:
    """Analyse one pickle program starting at the reader's position."""
    return Machine(reader, budget, hooks).run()


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
