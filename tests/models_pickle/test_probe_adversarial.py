"""Starts of pickles that CPython loads, which the probe (mlsec.models.probe) must take for
pickles: a file it rejects is never analysed, whatever follows."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

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


class _Imports(pickle.Unpickler):
    """CPython's unpickler, stopped at the first import it would resolve (named, never
    imported)."""

    def find_class(self, module: str, name: str) -> Any:
        raise _Import(module, name)


class _Import(Exception):
    pass


# FRAME 5, then an opcode longer than the 5 bytes: read from memory (pickle.loads) it is a
# BINFLOAT, a LONG1 and a LIST with no MARK (an error at once); read from a file object
# (pickle.load, torch.load) its argument comes after the frame, and the os.system call runs.
SPLIT = b"\x95" + (5).to_bytes(8, "little") + b"G" + bytes(8) + b"\x8a\x01\x05l" + PAYLOAD
SPLITS = {
    "frame-split": SPLIT,
    "proto-frame-split": b"\x80\x02" + SPLIT,
    # a first import that names nothing importable when read from memory
    "frame-split-decoy": b"\x80\x02" + SPLIT.replace(b"\x8a\x01\x05l", b"c-\n-"),
}


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_frames_split_by_an_opcode_are_pickles(tmp_path: Path, name: str) -> None:
    from mlsec.config import build_options
    from mlsec.scan import scan

    data = SPLITS[name]
    with pytest.raises(_Import) as imported:
        _Imports(io.BytesIO(data)).load()
    assert imported.value.args == ("os", "system")
    # read from memory it fails: a LIST with no MARK, or the decoy's module "-" (none is)
    with pytest.raises((pickle.UnpicklingError, ModuleNotFoundError)):
        pickle.loads(data.replace(b"cos\nsystem\n", b"N"))
    assert looks_like_pickle(data, True, len(data))
    (tmp_path / "model.pt").write_bytes(data)
    report = scan(build_options(tmp_path, use_git=False), analyzers=_MODEL_ANALYZERS)
    assert ("MLS101", "critical", "model.pt", None) in hits(report)
