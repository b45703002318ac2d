"""Runs of constants decoded by their layout (Machine.RUNS) do exactly what the opcodes one
by one do: the same stack, memo, counters, imports, errors and limits, whatever the caps."""

from __future__ import annotations

import pickle
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlsec.formats import pickle as machine
from mlsec.formats.pickle import Call, Global, Machine, Opaque, PSet, Unresolved
from mlsec.formats.streams import Budget
from tests.models_pickle.runs_fuzz import new_machine


def _budget(**kw: Any) -> Budget:
    limits: dict[str, Any] = {
        "timeout": 60,
        "max_ops": 10**9,
        "max_uncompressed": 10**9,
        "max_ratio": 100,
    }
    limits.update(kw)
    return Budget(**limits)


def _canon(value: Any, depth: int = 0) -> Any:
    """A comparable picture of a symbolic value (identity-free, cycles cut by depth)."""
    if depth > 6:
        return "..."
    d = depth + 1
    kind = type(value)
    if kind is Opaque:
        return ("opaque", value.label)
    if kind is Global:
        return ("global", value.module, value.name, value.uses, value.opcode, value.offset)
    if kind is Unresolved:
        return ("unresolved", value.detail, value.uses)
    if kind is Call:
        return ("call", _canon(value.func, d), _canon(value.args, d), _canon(value.state, d))
    if kind is dict:
        return ("dict", tuple((_canon(k, d), _canon(v, d)) for k, v in value.items()))
    if kind is list or kind is PSet:
        return (kind.__name__, tuple(_canon(v, d) for v in value))
    if kind is tuple:
        return ("tuple", tuple(_canon(v, d) for v in value))
    if kind is float:
        return ("float", repr(value))
    return (kind.__name__, value)


def _run(data: bytes, runs: bool, pipe: bool = False, **budget: Any) -> tuple[Machine, Any]:
    m = new_machine(data, runs, _budget(**budget), pipe)
    return m, m.run()


def _picture(m: Machine, res: Any) -> Any:
    return (
        res.ops,
        res.end,
        res.error,
        res.error_offset,
        None if res.limit is None else res.limit.limit,
        _canon(res.result),
        [_canon(imp) for imp in res.imports],
        sorted((k, _canon(v)) for k, v in m.memo.items()),
        m.memo_len,
        m._memo_structured,
        m._memo_long_text,
        [_canon(v) for v in m.stack],
    )


def _same(data: bytes, pipe: bool = False, **budget: Any) -> Machine:
    """Decode with and without runs; assert every observable is equal; the run machine."""
    slow, slow_res = _run(data, False, pipe, **budget)
    fast, fast_res = _run(data, True, pipe, **budget)
    assert _picture(fast, fast_res) == _picture(slow, slow_res)
    return fast


def _applied(m: Machine) -> int:
    return m._run_credit - machine.RUN_CREDIT  # >0: runs paid off (each use earns its ops)


def _records(count: int, text: str = "x" * 300) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"n{i}", "text": text, "score": i / 7, "ok": i % 2 == 0,
             "t": (i, (i + 1,), (i, None, True))}
            for i in range(count)]  # fmt: skip


def _uni(text: str) -> bytes:
    data = text.encode()
    return (
        b"\x8c" + bytes([len(data)]) + data
        if len(data) < 256
        else (b"X" + struct.pack("<I", len(data)) + data)
    )


def _bench_record(i: int, text: bytes = b"x" * 740) -> bytes:
    """A record as benchmarks/bench_scale.py writes it (every string memoized)."""
    return (
        b"}\x94(\x8c\x02id\x94J" + struct.pack("<i", i)
        + b"\x8c\x04name\x94X" + struct.pack("<I", len(text)) + text + b"\x94"
        + b"\x8c\x05score\x94G" + struct.pack(">d", i / 7) + b"u"
    )  # fmt: skip


def _bench(count: int, text: bytes = b"x" * 740) -> bytes:
    body = b"".join(
        _bench_record(i, text) + (b"e(" if i % 100 == 99 else b"") for i in range(count)
    )
    return b"\x80\x04]\x94(" + body + b"e."


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_records_as_pickle_writes_them(protocol: int) -> None:
    data = pickle.dumps(_records(3000), protocol=protocol)
    m = _same(data)
    assert _applied(m) > 40_000  # protocols 2 and 3 write BINPUT/LONG_BINPUT, 4 MEMOIZE


@pytest.mark.parametrize("index", [0, 3, 700, 10**6])
def test_binput_elsewhere_than_the_next_index_is_left_to_the_handler(index: int) -> None:
    # pickle writes BINPUT/LONG_BINPUT at the next index; one record writes elsewhere (over
    # an entry, or ahead of memo_len): from there the opcodes go one by one
    data = bytearray(pickle.dumps(_records(1000), protocol=2))
    at = data.index(b"r", len(data) // 2)  # a LONG_BINPUT in the middle
    while data[at + 5] not in (0x4B, 0x4D, 0x4A, 0x58, 0x86, 0x87, 0x85, 0x28, 0x75):
        at = data.index(b"r", at + 1)
    data[at + 1 : at + 5] = struct.pack("<I", index)
    m = _same(bytes(data))
    assert _applied(m) > 0


def test_tuples_bools_and_memo_reads_inside_records(monkeypatch) -> None:
    # pickle writes a repeated key as BINGET, a tuple as TUPLE1/2/3 then MEMOIZE
    data = pickle.dumps(_records(4000), protocol=4)
    assert b"\x85\x94" in data and b"\x87\x94" in data and b"h\x02" in data
    for structured in (3, 20_000):
        monkeypatch.setattr(machine, "MAX_MEMO_STRUCTURED", structured)
        for names in (50, 1_000_000):
            monkeypatch.setattr(machine, "MAX_MEMO_NAMES", names)
            monkeypatch.setattr(machine, "MAX_MEMO", min(names, 300_000))
            m = _same(data)
            assert _applied(m) > 40_000
    # a TUPLE reaching under the MARK is the handler's error
    _same(b"\x80\x04]\x94K\x01(K\x02\x86e.")
    _same(b"\x80\x04]\x94(\x85e.")


@pytest.mark.parametrize("pipe", [False, True])
def test_the_benchmark_layout_runs_and_matches(pipe: bool) -> None:
    m = _same(_bench(2000), pipe)
    assert _applied(m) > 20_000  # nearly every opcode went through a run
    assert m._drained is not pipe  # a file is buffered ahead to its end, a pipe never


@pytest.mark.parametrize("cut", [1, 5, 9, 800, 1600])
def test_read_ahead_at_the_end_of_a_file(cut: int) -> None:
    # runs cut by the 64 KiB buffer (and by the stream's end): what was buffered ahead is
    # decoded from the same position on
    data = _bench(4000)
    _same(data[:-cut])


@pytest.mark.parametrize(
    ("cap", "value"),
    [
        ("MAX_MEMO", 50),
        ("MAX_MEMO_NAMES", 120),
        ("MAX_MEMO_STRUCTURED", 7),
        ("MAX_MEMO_LONG_TEXT", 3000),
        ("MAX_ITEMS", 3),
        ("LONG_TEXT", 2),
    ],
)
def test_every_memo_and_item_cap_is_applied_alike(monkeypatch, cap: str, value: int) -> None:
    monkeypatch.setattr(machine, cap, value)
    m = _same(_bench(600))
    assert _applied(m) > 0
    _same(pickle.dumps(_records(500), protocol=4))
    _same(pickle.dumps([list(range(i, i + 40)) for i in range(0, 40_000, 40)], protocol=4))


def test_memo_stays_bounded_through_runs(monkeypatch) -> None:
    monkeypatch.setattr(machine, "MAX_MEMO", 100)
    monkeypatch.setattr(machine, "MAX_MEMO_NAMES", 400)
    monkeypatch.setattr(machine, "MAX_MEMO_STRUCTURED", 10)
    m = _same(_bench(3000))
    assert len(m.memo) == 400
    assert m.memo_len == 1 + 5 * 3000  # the list, then a dict and four strings per record
    assert sum(1 for v in m.memo.values() if type(v) in (list, dict)) == 10  # the list first


def test_names_memoized_inside_runs_resolve_through_the_memo() -> None:
    # records memoize "os" and "system" (memo 2 and 4 of the second record's run)
    record = b"}\x94(" + _uni("m") + b"\x94" + _uni("os") + b"\x94"
    record += _uni("n") + b"\x94" + _uni("system") + b"\x94u"
    body = record * 300
    # memo: 0 list, then per record 5 entries: dict, "m", "os", "n", "system"
    call = b"j" + struct.pack("<I", 5 * 299 + 3) + b"j" + struct.pack("<I", 5 * 299 + 5)
    call += b"\x93" + _uni("echo hi") + b"\x85R"
    data = b"\x80\x04]\x94(" + body + b"e" + call + b"."
    m = _same(data)
    assert _applied(m) > 0
    imports = m.result.imports
    assert [(g.module, g.name) for g in imports if type(g) is Global] == [("os", "system")]
    assert imports[0].uses & machine.USE_CALL


def test_a_put_ahead_of_memoize_is_left_to_the_opcodes() -> None:
    # BINPUT 200 first: the MEMOIZE that reaches index 200 overwrites it and does not count
    head = b"\x80\x04]\x94N\x71\xc80("
    data = head + b"".join(_bench_record(i) for i in range(100)) + b"e."
    _same(data)


def test_memo_reads_as_keys_and_values() -> None:
    # keys read back with BINGET (as pickle writes repeated keys), values too; one key that
    # is an import (not a constant) and one read of an entry that was never written
    keys = _uni("a") + b"\x94" + _uni("b") + b"\x94"  # memo 1, 2
    body = b"".join(b"}\x94(h\x01K" + bytes([i]) + b"h\x02h\x01u" for i in range(50))
    imp = b"\x8c\x08builtins\x94\x8c\x03len\x94\x93\x94"  # memo ... an import
    bad = b"}\x94(h\x01K\x01h\x07K\x02u"  # h\x07 is the import: a key that is not constant
    missing = b"}\x94(h\x01K\x01\x68\xf0K\x02u"  # nothing at 240
    for tail in (b"", bad, missing):
        data = b"\x80\x04]\x94" + keys + b"0(" + body + imp + b"0" + tail + b"e."
        _same(data)


@pytest.mark.parametrize("where", [0, 1, 150])
def test_invalid_text_inside_a_run_is_the_opcodes_error(where: int) -> None:
    records = [_bench_record(i, b"y" * 300) for i in range(200)]
    records[where] = records[where].replace(b"y" * 300, b"y" * 299 + b"\xff", 1)
    data = b"\x80\x04]\x94(" + b"".join(records) + b"e."
    m = _same(data)
    assert m.result.error is not None


@pytest.mark.parametrize("cut", [1, 7, 300, 5000, 40_000])
def test_truncated_inside_runs_breaks_where_the_opcodes_do(cut: int) -> None:
    data = _bench(100)
    _same(data[:-cut])


def test_frames_are_respected() -> None:
    data = pickle.dumps(_records(2000), protocol=4)  # the pickler frames every 64 KiB
    assert b"\x95" in data[:3]
    _same(data)
    # a FRAME whose end splits a run: what the runs decode stops at the frame end too
    body = b"".join(_bench_record(i, b"z" * 100) for i in range(50))
    frame = b"\x95" + struct.pack("<Q", 2 + 1 + len(body) // 2)
    _same(b"\x80\x04" + frame + b"]\x94(" + body + b"e.")


def test_targets_that_are_not_plain_containers_are_left_to_the_opcodes() -> None:
    run = b"(" + b"K\x01K\x02K\x03" * 20 + b"e"
    for target in (
        b"\x8c\x08builtins\x94\x8c\x04list\x94\x93\x94",  # an import: APPENDS mutates it
        b"\x8f\x94",  # EMPTY_SET: APPENDS on a set (a no-op for the machine)
        b"]\x94" + b"(" + b"K\x05" * 300 + b"e",  # a full list
    ):
        _same(b"\x80\x04" + target + run * 5 + b".")


def test_big_dicts_and_lists_in_batches() -> None:
    data = pickle.dumps({f"k{i:05d}": i for i in range(5000)}, protocol=4)
    _same(data)
    _same(pickle.dumps(list(range(100_000)), protocol=4))
    _same(pickle.dumps([f"s{i}" for i in range(5000)], protocol=4))
    _same(pickle.dumps([None, True, False, 1.5] * 3000, protocol=4))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["a", "bb", "ccc", "é", "\udcff"]),
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(-(2**40), 2**40),
                st.floats(allow_nan=False),
                st.text(max_size=300),
                st.tuples(st.integers(0, 70_000), st.booleans()),
                st.tuples(st.tuples(st.none()), st.text(max_size=3), st.floats(allow_nan=False)),
            ),
            max_size=6,
        ),
        max_size=60,
    ),
    st.sampled_from([2, 4, 5]),
)
def test_differential_on_generated_records(rows: list[dict[str, Any]], protocol: int) -> None:
    try:
        data = pickle.dumps(rows * 3, protocol=protocol)
    except UnicodeEncodeError:
        return  # lone surrogates: protocol < 4 pickles them with surrogatepass too
    _same(data)


def test_layouts_that_never_repeat_cost_a_bounded_credit(monkeypatch) -> None:
    compiled = 0
    real = machine._compile_run

    def counting(*args: Any) -> Any:
        nonlocal compiled
        compiled += 1
        return real(*args)

    monkeypatch.setattr(machine, "_compile_run", counting)
    monkeypatch.setattr(machine, "RUN_CREDIT", 400)
    # every run a new layout: a key of a new length each time, never matched again
    body = b"".join(b"(" + _uni("k" * (i % 200 + 1)) + b"K\x01u" for i in range(2000))
    data = b"\x80\x04}\x94" + body + b"."
    _same(data)
    assert compiled < 60  # the credit ran out: the rest went opcode by opcode


def test_op_and_time_budgets_still_stop_a_file_of_runs() -> None:
    data = _bench(3000)
    _, res = _run(data, True, max_ops=5000)
    assert res.limit is not None and res.limit.limit == "max-pickle-ops"
    _, res = _run(data, True, timeout=-1)
    assert res.limit is not None and res.limit.limit == "file-timeout-seconds"
    _, res = _run(data, True)
    assert res.limit is None and res.error is None and res.ops == 4 + 14 * 3000 + 2 * 30 + 2


@pytest.mark.parametrize("bad", [None, 150, 2999])
def test_records_dropped_by_a_full_list_are_still_checked(monkeypatch, bad: int | None) -> None:
    # the memo keeps nothing more and APPENDS keeps nothing of a full list: the records are
    # never built, but their text is still decoded (the error is where the opcodes find it)
    # and counted
    monkeypatch.setattr(machine, "MAX_MEMO", 10)
    monkeypatch.setattr(machine, "MAX_MEMO_NAMES", 10)
    monkeypatch.setattr(machine, "MAX_ITEMS", 4)
    records = [_bench_record(i, b"\xc3\xa9" * 300) for i in range(3000)]
    if bad is not None:
        records[bad] = records[bad].replace(b"\xc3\xa9", b"\xc3(", 1)
    body = b"".join(r + (b"e(" if k % 100 == 99 else b"") for k, r in enumerate(records))
    dropped = 0
    real = Machine._count_records

    def counting(self: Machine, run: Any, count: int, long_text: int) -> None:
        nonlocal dropped
        dropped += count
        real(self, run, count, long_text)

    monkeypatch.setattr(Machine, "_count_records", counting)
    m = _same(b"\x80\x04]\x94(" + body + b"e.")
    if bad is None or bad > 2000:
        assert dropped > 2000
    assert (m.result.error is None) is (bad is None)
    if bad is None:
        assert m._memo_long_text == 3000 * 300  # characters, not bytes


def test_tuple_keys_are_left_to_the_handler() -> None:
    # {(memo list,): 1}: a key that cannot be hashed is skipped by SETITEMS, never raised
    head = b"\x80\x04]\x94"  # memo 0: a list
    body = b"}\x94(h\x00\x85K\x01u" * 50 + b"}\x94(K\x02\x85K\x01u" * 50
    m = _same(head + b"(" + body + b"e.")
    assert m.result.error is None
    assert {} in m.result.result and {(2,): 1} in m.result.result


def test_large_layouts_do_not_stay_in_the_regex_cache() -> None:
    import re

    re.purge()
    data = pickle.dumps([list(range(i * 1000 + 70_000, i * 1000 + 71_000)) for i in range(60)])
    m = _same(data)
    assert _applied(m) > 0
    assert max(len(run.pattern.pattern) for run in m._runs) > machine.RUN_CACHED_PATTERN
    assert all(len(key[1]) <= machine.RUN_CACHED_PATTERN for key in re._cache if key[0] is bytes)


def test_a_file_of_records_is_judged_to_its_end_or_reported(scan_file) -> None:
    from mlsec.config import Limits

    from .conftest import hits

    data = _bench(5000)
    report = scan_file("records.pkl", data)
    assert hits(report) == {("MLS102", "info", "records.pkl", None)}  # read to its STOP
    for limits in (Limits(file_timeout_seconds=1e-6), Limits(max_pickle_ops=20_000)):
        report = scan_file("records.pkl", data, limits=limits)
        limit = [f for f in report.findings if f.rule_id == "MLS904"]
        assert [(f.severity.value, f.path) for f in limit] == [("medium", "records.pkl")]


_MUTATED = [
    _bench(300, b"x" * 300),
    pickle.dumps(_records(300), protocol=2),
    pickle.dumps(_records(300), protocol=4),
    pickle.dumps([list(range(i, i + 30)) for i in range(0, 3000, 30)], protocol=4),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(range(len(_MUTATED))),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=4),
)
def test_differential_on_mutated_record_pickles(sample: int, edits: list[Any]) -> None:
    # hostile bytes in the middle of runs (a corrupted length, index, opcode or text): the
    # runs stop, or decline, exactly where the opcodes would
    data = bytearray(_MUTATED[sample])
    for where, value in edits:
        data[int(where * len(data))] = value
    _same(bytes(data))


def test_runs_that_do_not_pay_are_seldom_tried(monkeypatch) -> None:
    # every record alone between opcodes runs do not take (an object's state: NEWOBJ, the
    # dict, BUILD): one record per try costs more than it saves, so tries back off
    state = b"}\x94(" + _uni("x") + b"\x94K\x01" + _uni("y") + b"\x94K\x02u"
    body = b"\x8c\x08builtins\x94\x8c\x06object\x94\x93\x94"  # memo 1, 2, 3
    body += b"".join(b"h\x03)\x81\x94" + state + b"b" for _ in range(5000))
    tries = 0
    real = Machine._try_runs

    def counting(self: Machine, *args: Any) -> Any:
        nonlocal tries
        tries += 1
        return real(self, *args)

    monkeypatch.setattr(Machine, "_try_runs", counting)
    _same(b"\x80\x04]\x94(" + body + b"e.")
    assert tries < 100  # of 5000 records: the wait doubles to RUN_MAX_WAIT


def test_large_layouts_that_never_repeat_are_learnt_a_few_times(monkeypatch) -> None:
    compiled = 0
    real = machine._compile_run

    def counting(*args: Any) -> Any:
        nonlocal compiled
        run, cost = real(*args)
        compiled += run is not None
        return run, cost

    monkeypatch.setattr(machine, "_compile_run", counting)
    runs = [
        b"(" + b"".join(_uni(f"k{j + i}") + b"K\x01" for j in range(1000)) + b"u"
        for i in range(100)
    ]
    _same(b"\x80\x04}\x94" + b"".join(runs) + b".")
    # each costs more than RUN_CREDIT / 3 to learn (re's compiler is slow) and pays nothing
    assert compiled <= 3


def test_runs_resume_once_the_credit_grows_back(monkeypatch) -> None:
    # layouts that never repeat use the credit up first; it grows back with the opcodes
    # decoded one by one, and the records after them run by layout again
    monkeypatch.setattr(machine, "RUN_CREDIT", 2000)
    unique = b"".join(
        b"(" + b"".join(_uni(f"k{j + i}") + b"K\x01" for j in range(60)) + b"u" for i in range(40)
    )
    records = b"".join(_bench_record(i, b"x" * 40) for i in range(20_000))
    data = b"\x80\x04]\x94}\x94" + unique + b"0(" + records + b"e."
    m = _same(data)
    assert m._run_credit > 100_000  # earned by the records


def test_memoize_and_binput_mixed_are_left_to_the_opcodes() -> None:
    # no pickler writes both in one record; the opcodes decide what each stores
    records = b"".join(
        b"}\x94(" + _uni("a") + b"q" + bytes([2 + 3 * i]) + _uni("b") + b"\x94u" for i in range(60)
    )
    m = _same(b"\x80\x04]\x94(" + records + b"e.")
    assert len(m.memo) == 1 + 3 * 60
