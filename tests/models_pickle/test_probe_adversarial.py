"""Starts of pickles that CPython loads, which the probe (mlsec.models.probe) must take for
pickles: a file it rejects is never analysed, whatever follows."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from mlsec.models.probe import looks_like_pickle

from .conftest import hits

# Each start leaves the stack as it found it (empty, no MARK): CPython accepts every one.
STARTS = {
    "mark-pop": b"(0",  # POP with nothing above a MARK discards the MARK (load_pop)
    "build-list": b"]Nb0",  # BUILD with no state on a list: nothing to set
    "build-text": b"Vabc\nNb0",
    "proto-build-dict": b"\x80\x02}Nb0",
    "int-hex": b"I0x10\n0",  # strtol(s, &end, 0): hex, octal; int(s, 0): binary, underscores
    "int-octal": b"I017\n0",
    "int-binary": b"I0b101\n0",
    "int-negative-hex": b"I-0x1f\n0",
    "int-nul": b"I7\x00junk\n0",  # C reads up to the NUL
    "long-hex": b"L0x10L\n0",
    "long-binary": b"L0b1\n0",
    "float-nul": b"F1.5\x00junk\n0",
}
PAYLOAD = b"cos\nsystem\n(S'echo never-run'\ntR."
_MODEL_ANALYZERS = ("mlsec.models.containers:PickleModelsAnalyzer",)


@pytest.mark.parametrize("start", sorted(STARTS))
def test_starts_cpython_accepts_are_pickles(start: str) -> None:
    head = STARTS[start]
    assert pickle.loads(head + b"K\x07.") == 7  # constants only: CPython reads the start
    data = head + PAYLOAD
    assert looks_like_pickle(data, True, len(data))


def test_what_follows_those_starts_is_judged(tmp_path: Path) -> None:
    from mlsec.config import build_options
    from mlsec.scan import scan

    expected = set()
    for start, head in STARTS.items():
        for name in (f"{start}.bin", f"{start}.pkl"):
            (tmp_path / name).write_bytes(head + PAYLOAD)
            expected.add(("MLS101", "critical", name, None))
    report = scan(build_options(tmp_path, use_git=False), analyzers=_MODEL_ANALYZERS)
    assert expected <= hits(report)


def test_a_build_after_an_import_still_ends_the_probe() -> None:
    # joblib writes raw array bytes behind the BUILD of its NumpyArrayWrapper: the probe
    # does not decode them (the full scan skips them as joblib does)
    from mlsec.models import probe

    head = b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}b" + bytes(range(40))
    assert probe._decode_head(head, None) is True
    head = b"\x80\x02cjoblib.numpy pickle\nNumpyArrayWrapper\n)\x81}b" + bytes(range(40))
    assert probe._decode_head(head, None) is False  # no module has that name
