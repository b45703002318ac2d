"""The memo keeps long text only up to a budget (a pickle of millions of records memoizes
every string); a name hidden in a dropped entry is still judged, never passed."""

from __future__ import annotations

import struct

import pytest

from mlsec.formats import pickle as machine

from .conftest import hits


def _uni(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _long_name_via_memo() -> bytes:
    """``builtins.eval.__self__.eval`` as a protocol-4 dotted name, memoized, then read back
    with BINGET for STACK_GLOBAL, and called."""
    dotted = "eval" + ".__self__.eval" * 40  # longer than LONG_TEXT
    assert len(dotted) > machine.LONG_TEXT
    return (
        b"\x80\x04"
        + _uni("builtins") + b"\x94"  # memo 0
        + _uni(dotted) + b"\x94"  # memo 1: long text
        + b"0" + b"0"  # POP both: only the memo holds them now
        + b"h\x00" + b"h\x01"  # BINGET 0, BINGET 1
        + b"\x93"  # STACK_GLOBAL
        + _uni("print(1)") + b"\x85R."  # TUPLE1 REDUCE STOP
    )  # fmt: skip


def _gating(report) -> set[tuple[str, str]]:
    return {(rule, sev) for rule, sev, path, _ in hits(report) if sev in ("critical", "high")}


def test_long_name_is_judged_while_the_budget_lasts(scan_file) -> None:
    report = scan_file("model.pkl", _long_name_via_memo())
    assert _gating(report) == {("MLS104", "high")}  # an attribute walk through __self__


def test_long_name_dropped_from_the_memo_is_still_high(scan_file, monkeypatch) -> None:
    monkeypatch.setattr(machine, "MAX_MEMO_LONG_TEXT", 0)
    report = scan_file("model.pkl", _long_name_via_memo())
    assert _gating(report) == {("MLS104", "high")}  # the callee is unresolved now


@pytest.mark.parametrize("budget", [0, 1 << 20])
def test_benign_records_stay_below_high_whatever_the_budget(scan_file, monkeypatch, budget) -> None:
    monkeypatch.setattr(machine, "MAX_MEMO_LONG_TEXT", budget)
    body = b"".join(
        b"}\x94(" + _uni("name") + b"\x94" + _uni("x" * 700) + b"\x94u" for _ in range(50)
    )
    data = b"\x80\x04]\x94(" + body + b"e."
    report = scan_file("records.pkl", data)
    assert not {sev for _, sev, _, _ in hits(report)} & {"critical", "high"}, hits(report)
