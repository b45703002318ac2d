"""Hostile inputs for the record-run fast path (Machine.RUNS): what it decodes is what the
opcodes one by one decode (every observable, as tests/models_pickle/test_runs.py compares
them), and its work stays linear in the bytes, whatever the records do."""

from __future__ import annotations

import re
import struct
from typing import Any

import pytest

from mlsec.formats import pickle as machine

from . import runs_fuzz
from .test_runs import _same


class _Counting:
    """A run's pattern that counts the bytes its matches cover."""

    def __init__(self, pattern: re.Pattern[bytes], counter: list[int]) -> None:
        self.pattern = pattern
        self.counter = counter

    def match(self, buf: bytes, pos: int, endpos: int) -> re.Match[bytes] | None:
        found = self.pattern.match(buf, pos, endpos)
        if found is not None:
            self.counter[0] += found.end() - pos
            self.counter[1] = max(self.counter[1], found.end() - pos)
        return found


@pytest.fixture
def matched(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes matched by every layout learnt from here on (a deterministic measure of the
    work runs do besides applying what they matched)."""
    counter = [0, 0]  # bytes matched in all, the most at once
    real = machine._compile_run

    def counting(*args: Any) -> Any:
        run, cost = real(*args)
        if run is not None:
            run = run._replace(pattern=_Counting(run.pattern, counter))
        return run, cost

    monkeypatch.setattr(machine, "_compile_run", counting)
    return counter


_PAIRS = b"".join(b"K" + bytes([k]) + b"K\x07" for k in range(8))  # 8 items: 20 opcodes a run


def _binput_records(count: int, wrong_every: int) -> bytes:
    """Protocol 2 records (EMPTY_DICT LONG_BINPUT MARK ... SETITEMS), each at the next memo
    index but every ``wrong_every``-th, which writes over entry 0 (legal: the unpickler
    replaces it and memo_len stays)."""
    out = bytearray(b"\x80\x02]q\x00(")
    memo_len = 1
    for k in range(count):
        if k % wrong_every == 1:
            index = 0
        else:
            index = memo_len
            memo_len += 1
        out += b"}r" + struct.pack("<I", index) + b"(" + _PAIRS + b"u"
    return bytes(out + b"e.")


def test_runs_cut_at_every_third_record_are_not_rescanned_to_the_end(
    matched: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each try matched every record to the buffer's end, applied one (the next BINPUT is out
    # of order) and went on: every third record rescanned all that follows, quadratic (a
    # 1.2 MB file took 76 s of CPU, 0.15 s opcode by opcode: a few MB reach the file time limit,
    # and what follows goes unseen). What is matched and not applied is charged now.
    monkeypatch.setattr(machine, "RUN_CREDIT", 2000)  # what runs may waste before they pay
    data = _binput_records(3000, 3)
    _same(data)
    assert matched[0] < 4 * len(data)  # linear (it was 1,000 times the file)


def test_records_that_always_decline_match_one_record_a_try(matched: list[int]) -> None:
    # A LONG_BINPUT far ahead of memo_len: every run that memoizes declines (MEMOIZE could
    # reach that entry), whatever its bytes. Each try used to match every record to the
    # buffer's end first (1,000,000 records of 8 bytes: 31.7 s of CPU, 2.4 s without runs).
    record = b"}\x94(K\x01K\x02u"
    data = b"\x80\x04]\x94N\x72" + struct.pack("<I", 10**9) + b"0(" + record * 30_000 + b"e."
    _same(data)
    assert matched[0] < len(data)
    # a key read from the memo that is no constant (the list: SETITEMS skips it) likewise
    record = b"}\x94(h\x00K\x01u"
    data = b"\x80\x04]\x94(" + record * 30_000 + b"e."
    _same(data)
    assert matched[0] < 2 * len(data)


@pytest.mark.parametrize("full", [False, True])
def test_a_batch_of_runs_is_matched_a_bounded_stretch_at_a_time(
    matched: list[int], monkeypatch: pytest.MonkeyPatch, full: bool
) -> None:
    # re's matcher keeps state for every repetition until a match ends (a 4 MiB buffer of
    # small records: 50-80 MB): a batch is matched RUN_BATCH runs at a time, and the
    # batches, split anywhere, do what the opcodes do (records kept, or dropped unseen into
    # a full list when the memo keeps nothing more)
    monkeypatch.setattr(machine, "RUN_BATCH", 7)
    if full:
        monkeypatch.setattr(machine, "MAX_MEMO", 10)
        monkeypatch.setattr(machine, "MAX_MEMO_NAMES", 10)
        monkeypatch.setattr(machine, "MAX_ITEMS", 4)
    record = b"}\x94(\x8c\x02id\x94K\x01\x8c\x04name\x94\x8c\x03abcu"
    data = b"\x80\x04]\x94(" + record * 2000 + b"e(" + record * 30 + b"e."
    _same(data)
    assert 0 < matched[1] <= 7 * len(record)


@pytest.mark.parametrize("first", range(0, 600, 100))
def test_differential_fuzz_fixed_seeds(first: int) -> None:
    # generated and mutated record pickles under random caps (tests/models_pickle/
    # runs_fuzz.py); scripts/fuzz_pickle_runs.py runs the same for as long as asked
    differ = [seed for seed in range(first, first + 100) if runs_fuzz.check(seed) is not None]
    assert differ == []
