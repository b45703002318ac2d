"""A differential fuzzer for the record-run fast path: pickles of records (written by
``pickle.dumps`` and opcode by opcode), mutated, decoded with runs on and off under random
memo and item caps; every observable of the two decodes must be equal.

Used by tests/models_pickle/test_runs_adversarial.py (a few seconds, fixed seeds) and by
scripts/fuzz_pickle_runs.py (as long as asked).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import random
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import chain
from operator import itemgetter
from typing import Any

from mlsec.formats import pickle as machine
from mlsec.formats.pickle import MARK, Call, Global, Machine, Opaque, PSet, Unresolved
from mlsec.formats.streams import Budget, ByteReader

MAX_CASE = 4 << 20  # bytes of records a case writes at most

# caps the machine reads at run time (and _compile_run when it learns a layout)
CAPS = {
    "MAX_ITEMS": (2, 3, 5, 256),
    "MAX_MEMO": (3, 10, 50, 300_000),
    "MAX_MEMO_NAMES": (5, 40, 1_000_000),
    "MAX_MEMO_STRUCTURED": (1, 4, 20_000),
    "MAX_MEMO_LONG_TEXT": (10, 300, 32 * 1024 * 1024),
    "LONG_TEXT": (1, 4, 256),
}


def canon(value: Any, seen: dict[int, int] | None = None, depth: int = 0) -> Any:
    """A comparable picture of a symbolic value: identity-free, but a container or call met
    again (in ``seen``, by identity) is a reference to the first (the memo shares them)."""
    if seen is None:
        seen = {}
    if depth > 5:
        return "..."
    kind = type(value)
    if kind in _SHARED:
        first = seen.get(id(value))
        if first is not None:
            return ("ref", first)
        seen[id(value)] = len(seen)
    d = depth + 1
    if kind is Opaque:
        return ("opaque", value.label)
    if kind is Global or kind is Unresolved:
        return (
            kind.__name__,
            value.module if kind is Global else value.detail,
            value.name if kind is Global else "",
            value.uses,
            value.opcode,
            value.offset,
            tuple(sorted(value.passed)),
            tuple(
                (k, tuple(canon(v, seen, d) for v in vs)) for k, vs in value.computed_args.items()
            ),
            tuple(canon(c, seen, d) for c in value.calls),
        )
    if kind is Call:
        parts = (value.func, value.args, value.kwargs, value.state)
        return ("call", value.offset, *(canon(part, seen, d) for part in parts))
    if kind is dict:
        return ("dict", tuple((canon(k, seen, d), canon(v, seen, d)) for k, v in value.items()))
    if kind is list or kind is PSet or kind is tuple:
        return (kind.__name__, tuple(canon(v, seen, d) for v in value))
    if kind is float:
        return ("float", repr(value))
    return (kind.__name__, repr(value))


_SHARED = frozenset({dict, list, PSet, Call, Global, Unresolved})


class Pipe(io.RawIOBase):
    """A stream that cannot seek (a decompressor's output): no read-ahead for the runs."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._data.readinto(buffer)


def new_machine(data: bytes, runs: bool, budget: Budget, pipe: bool = False) -> Machine:
    """A machine over ``data`` with the record runs on or off, from the first opcode on
    (RUN_WARMUP 0: the inputs are small); ``pipe``: read through a stream that cannot seek."""
    raw: Any = io.BufferedReader(Pipe(data)) if pipe else io.BytesIO(data)
    m = Machine(ByteReader(raw, len(data)), budget)
    m.RUNS = runs
    m.RUN_WARMUP = 0
    m._run_credit = machine.RUN_CREDIT if runs else machine._NEVER
    return m


def decode(
    data: bytes, runs: bool, pipe: bool = False, max_ops: int = 10**9, detail: bool = False
) -> Any:
    """Every observable of one decode (RUN_WARMUP 0: runs from the first opcode on), and
    the memo counters (Machine._put_top is not one: the inline MEMOIZE does not move it,
    its handler does; it only has to be at least every index PUT wrote)."""
    budget = Budget(timeout=600, max_ops=max_ops, max_uncompressed=10**9, max_ratio=100)
    m = new_machine(data, runs, budget, pipe)
    res = m.run()
    pictures = _pictures if detail else _digest
    return (
        res.ops,
        res.end,
        res.error,
        res.error_offset,
        None if res.limit is None else res.limit.limit,
        res.protocol,
        res.frame_split,
        res.persistent_ids,
        res.tensors,
        res.tensor_elements,
        res.computed_total,
        pictures(res.computed),
        pictures((p.loader, p.data, p.offset) for p in res.nested),
        pictures([res.result]),
        pictures(res.imports),
        pictures(sorted(m.memo.items(), key=itemgetter(0))),
        m.memo_len,
        m._memo_structured,
        m._memo_long_text,
        pictures(m.stack),
        pictures(chain.from_iterable([MARK, *frame] for frame in m.metastack)),
    )


def _pictures(values: Iterable[Any]) -> list[Any]:
    seen: dict[int, int] = {}
    return [canon(value, seen) for value in values]


def _digest(values: Iterable[Any]) -> str:
    """A digest of the pictures of ``values``, one at a time (a decode may hold millions)."""
    h = hashlib.sha256()
    seen: dict[int, int] = {}
    for value in values:
        h.update(repr(canon(value, seen)).encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


@contextmanager
def caps(chosen: dict[str, int]) -> Iterator[None]:
    saved = {name: getattr(machine, name) for name in chosen}
    try:
        for name, value in chosen.items():
            setattr(machine, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(machine, name, value)


# a memo that keeps nothing more and full lists (the regime of a pickle of millions of
# records past its first 300,000, where records are dropped unseen), long text counted
FULL = {"MAX_MEMO": 3, "MAX_MEMO_NAMES": 5, "MAX_ITEMS": 2, "LONG_TEXT": 1}


# -- generated pickles -------------------------------------------------------------------------
def _uni(text: bytes) -> bytes:
    if len(text) < 256:
        return b"\x8c" + bytes([len(text)]) + text
    return b"X" + struct.pack("<I", len(text)) + text


class Writer:
    """A pickle written opcode by opcode, with the memo index pickle would use."""

    def __init__(self, rng: random.Random, style: str) -> None:
        self.rng = rng
        self.style = style  # "memoize" (protocol 4), "binput" (1-3) or "none"
        self.out = bytearray()
        self.memo = 0

    def put(self) -> None:
        rng = self.rng
        style = self.style
        if style == "none" or rng.random() < 0.1:
            return
        if rng.random() < 0.05:
            self._put_once()  # the same value memoized twice (legal, if no pickler's)
        self._put_once()

    def _put_once(self) -> None:
        rng = self.rng
        style = self.style
        if style == "memoize":
            self.out += b"\x94"
        elif self.memo < 256 and rng.random() < 0.8:
            self.out += b"q" + bytes([self.memo])
        else:
            self.out += b"r" + struct.pack("<I", self.memo)
        self.memo += 1

    def get(self) -> None:
        index = self.rng.randrange(max(self.memo, 1))
        if index < 256 and self.rng.random() < 0.7:
            self.out += b"h" + bytes([index])
        else:
            self.out += b"j" + struct.pack("<I", index)

    def value(self, depth: int = 0) -> None:
        rng = self.rng
        roll = rng.random()
        out = self.out
        if roll < 0.15:
            out += b"K" + bytes([rng.randrange(256)])
        elif roll < 0.22:
            out += b"M" + struct.pack("<H", rng.randrange(65536))
        elif roll < 0.3:
            out += b"J" + struct.pack("<i", rng.randrange(-(2**31), 2**31))
        elif roll < 0.36:
            out += b"G" + struct.pack(">d", rng.choice([0.5, -1.0, 1e300, float("nan")]))
        elif roll < 0.4:
            out += rng.choice([b"N", b"\x88", b"\x89"])
        elif roll < 0.6:
            size = rng.choice(
                [0, 1, 2, 5, 40, 255, 256, 300, 300, 70_000 if rng.random() < 0.1 else 1]
            )
            text = rng.choice([b"a", b"\xc3\xa9", b"os", b"system"]) * (size // 2 + 1)
            out += _uni(text[:size] if rng.random() < 0.9 else text[: size - 1] + b"\xff")
            self.put()
        elif roll < 0.7 and self.memo:
            self.get()
        elif roll < 0.8 and depth < 2:
            width = rng.randint(1, 3)
            for _ in range(width):
                self.value(depth + 1)
            out += bytes([0x84 + width])
            self.put()
        elif roll < 0.85 and depth < 2:
            self.record(depth + 1)
        elif roll < 0.88:
            out += b"C\x03abc" if rng.random() < 0.5 else b"U\x02xy"
        else:
            out += b"\x8c\x02id"
            self.put()

    def record(self, depth: int = 0) -> None:
        rng = self.rng
        is_dict = rng.random() < 0.7
        self.out += b"}" if is_dict else b"]"
        self.put()
        self.out += b"("
        for _ in range(rng.choice([0, 1, 2, 3, 8])):
            if is_dict:
                if rng.random() < 0.7:
                    key = rng.choice([b"id", b"name", b"score", b"k" * rng.randint(1, 80)])
                    self.out += _uni(key)
                    self.put()
                else:
                    self.value(depth + 1)
            self.value(depth + 1)
        self.out += b"u" if is_dict else b"e"

    def records(self, count: int) -> None:
        """Records as pickle writes a list of them: APPENDS every ``batch``."""
        rng = self.rng
        batch = rng.choice([3, 50, 1000])
        template = Writer(rng, self.style)
        template.memo = self.memo
        template.record()
        layouts = [bytes(template.out)]
        self.out += b"]"
        self.put()
        self.out += b"("
        for k in range(count):
            if len(self.out) > MAX_CASE:
                break
            if rng.random() < 0.9:
                # the same layout (fields vary in value, not width), memo indices its own
                start = len(self.out)
                self.record_like(layouts[0])
                if start == len(self.out):
                    self.record()
            else:
                self.record()
            if k % batch == batch - 1:
                self.out += b"e("
        self.out += b"e"

    def record_like(self, layout: bytes) -> None:
        """A record with ``layout``'s opcodes, its memo writes at this writer's indices."""
        rng = self.rng
        i = 0
        out = bytearray()
        while i < len(layout):
            code = layout[i]
            if code == 0x71:  # BINPUT
                if self.memo >= 256:
                    return
                out += b"q" + bytes([self.memo])
                self.memo += 1
                i += 2
            elif code == 0x72:
                out += b"r" + struct.pack("<I", self.memo)
                self.memo += 1
                i += 5
            elif code == 0x94:
                out += b"\x94"
                self.memo += 1
                i += 1
            elif code == 0x4B:
                out += b"K" + bytes([rng.randrange(256)])
                i += 2
            elif code == 0x4A:
                out += b"J" + struct.pack("<i", rng.randrange(-(2**31), 2**31))
                i += 5
            elif code in (0x88, 0x89):
                out += rng.choice([b"\x88", b"\x89"])
                i += 1
            elif code == 0x8C:
                size = layout[i + 1]
                out += layout[i : i + 2 + size]
                i += 2 + size
            elif code == 0x58:
                size = struct.unpack_from("<I", layout, i + 1)[0]
                out += layout[i : i + 5 + size]
                i += 5 + size
            elif code == 0x4D:
                out += layout[i : i + 3]
                i += 3
            elif code == 0x47:
                out += layout[i : i + 9]
                i += 9
            elif code in (0x68, 0x43, 0x55):
                size = 2 if code == 0x68 else 2 + layout[i + 1]
                out += layout[i : i + size]
                i += size
            elif code == 0x6A:
                out += layout[i : i + 5]
                i += 5
            else:
                out.append(code)
                i += 1
        self.out += out


# opcodes that read what runs left (the memo, the stack) or change how the stream is read
_INTRUDERS = [
    b"\x8c\x02os\x94\x8c\x06system\x94\x93\x94",  # STACK_GLOBAL (memoized names)
    b"cos\nsystem\n",
    b"\x8c\x08builtins\x8c\x04list\x93)R",
    b"\x93",
    b"R",
    b"b",
    b"0",
    b"2",
    b"1",
    b"t",
    b"(",
    b".",
    b"\x80\x02",
    b"\x95" + struct.pack("<Q", 40),
    b"\x95" + struct.pack("<Q", 3),
    b"p5\n",
    b"g1\n",
    b"r" + struct.pack("<I", 7),
    b"q\x00",
    b"\x81",
    b"i__main__\nX\n",
    b"\x8f\x94",
]


def _objects(rng: random.Random, count: int) -> Any:
    """Nested values as programs hold them: shared, and containing themselves."""
    pool: list[Any] = [None, True, 1.5, "os", "system", b"raw", 7, 2**70, ("t", 1)]
    out: list[Any] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.3:
            value: Any = {rng.choice(["a", "b", "os", 1, 2.5, None]): rng.choice(pool)}
            value[rng.choice(["c", "d"])] = rng.choice(pool + out[-3:])
        elif roll < 0.5:
            value = [rng.choice(pool + out[-3:]) for _ in range(rng.randint(0, 6))]
            if rng.random() < 0.2:
                value.append(value)  # a list that contains itself
        elif roll < 0.6:
            value = tuple(rng.choice(pool) for _ in range(rng.randint(0, 4)))
        elif roll < 0.7:
            value = {rng.choice(pool[1:8]) for _ in range(rng.randint(0, 3))}
        elif roll < 0.75:
            value = frozenset([1, 2, rng.randrange(9)])
        else:
            value = rng.choice(pool + out[-5:])
        out.append(value)
        if rng.random() < 0.3:
            pool.append(value)
    return out


def generated(rng: random.Random) -> bytes:
    """One pickle of records (and what may follow them), maybe mutated."""
    kind = rng.random()
    if kind < 0.15:
        objects = _objects(rng, rng.choice([10, 200, 3000]))
        data = bytearray(pickle.dumps(objects, protocol=rng.randint(0, 5)))
    elif kind < 0.35:
        rows = [
            {
                "id": i,
                "name": f"n{i % 7}" * rng.choice([1, 2, 100]),
                "score": i / 7,
                "ok": i % 2 == 0,
                "t": (i, (i + 1,)) if rng.random() < 0.5 else None,
            }
            for i in range(rng.choice([5, 60, 400]))
        ]
        if rng.random() < 0.3:
            shared = ("shared", 1)
            for row in rows:
                row["s"] = shared  # read back from the memo (BINGET) in every record
        data = bytearray(pickle.dumps(rows, protocol=rng.randint(0, 5)))
    else:
        style = rng.choice(["memoize", "binput", "none"])
        w = Writer(rng, style)
        w.out += b"\x80" + bytes([4 if style == "memoize" else 2])
        if rng.random() < 0.3:
            w.out += b"\x95" + struct.pack("<Q", rng.choice([30, 500, 1 << 20]))
        w.records(rng.choice([4, 40, 300, 1500]))
        # what follows: reads of memo entries the runs wrote, imports, calls
        for _ in range(rng.randint(0, 3)):
            if rng.random() < 0.5 and w.memo:
                w.get()
                w.get()
                w.out += rng.choice([b"\x93", b"\x86R", b"b", b"\x86", b"\x81", b"0"])
            else:
                w.out += rng.choice(_INTRUDERS)
        w.out += b"."
        data = w.out
    for _ in range(rng.choice([0, 0, 1, 2, 5])):
        mutate(rng, data)
    if rng.random() < 0.1:
        del data[rng.randrange(len(data) + 1) :]  # truncated
    return bytes(data)


def mutate(rng: random.Random, data: bytearray) -> None:
    if not data:
        return
    at = rng.randrange(len(data))
    roll = rng.random()
    if roll < 0.4:
        data[at] = rng.randrange(256)
    elif roll < 0.6:
        data[at:at] = rng.choice(_INTRUDERS)
    elif roll < 0.75:
        del data[at : at + rng.randint(1, 12)]
    elif roll < 0.9:
        # a copy of another stretch (a record duplicated, a layout repeated out of step)
        start = rng.randrange(len(data))
        data[at:at] = data[start : start + rng.randint(1, 64)]
    else:
        data[at] = rng.choice(b"\x94qrhj(eu\x85\x86\x87}]\x8cX")


def check(seed: int) -> tuple[bytes, dict[str, int]] | None:
    """Decode one generated case both ways; the case and its caps if they differ."""
    rng = random.Random(seed)
    chosen = {name: rng.choice(values) for name, values in CAPS.items() if rng.random() < 0.3}
    if rng.random() < 0.2:
        chosen.update(FULL)  # the memo keeps nothing more, lists are full: records dropped
    data = generated(rng)
    pipe = rng.random() < 0.15
    max_ops = rng.choice([10**9, 10**9, 3000])
    with caps(chosen):
        slow = decode(data, False, pipe, max_ops)
        fast = decode(data, True, pipe, max_ops)
    if max_ops != 10**9 and slow[4] == fast[4] == "max-pickle-ops":
        return None  # where an opcode limit stops differs by the checks' granularity
    return None if slow == fast else (data, chosen)
