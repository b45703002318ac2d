"""Mutated headers never raise anything but FormatError, and finish quickly."""

from __future__ import annotations

import contextlib
import json
import struct
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.generate_formats import onnx_model_bytes, saved_model_pb
from mlsec.formats import FormatError
from mlsec.formats.gguf import read_gguf
from mlsec.formats.onnx import parse_onnx
from mlsec.formats.safetensors import parse_header, read_header
from mlsec.formats.savedmodel import parse_saved_model

FORMATS = Path(__file__).resolve().parents[2] / "fixtures" / "formats"
SAFETENSORS = (FORMATS / "model.safetensors").read_bytes()
GGUF = (FORMATS / "model.gguf").read_bytes()
ONNX = onnx_model_bytes()
SAVED_MODEL = saved_model_pb([("a", "MatMul"), ("b", "ReadFile")], ["PyFunc"])
BOUND_SECONDS = 2.0
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        out[position % len(out)] = value
    return bytes(out[:cut] if cut is not None else out)


edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8)
cuts = st.one_of(st.none(), st.integers(0, 4096))


@FUZZ
@given(edits=edits, cut=cuts)
def test_safetensors_mutations(
    tmp_path_factory: object, edits: list[tuple[int, int]], cut: int | None
) -> None:
    path = Path(tmp_path_factory.mktemp("st")) / "m.safetensors"  # type: ignore[attr-defined]
    path.write_bytes(mutate(SAFETENSORS, edits, cut))
    started = time.monotonic()
    with contextlib.suppress(FormatError):
        read_header(path)
    assert time.monotonic() - started < BOUND_SECONDS


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=8,
)
tensor_entry = st.fixed_dictionaries(
    {},
    optional={
        "dtype": st.sampled_from(["F32", "F16", "U8", "BOOL", "F4", "X", ""]) | json_values,
        "shape": st.lists(st.integers(-2, 1 << 40), max_size=4) | json_values,
        "data_offsets": st.lists(st.integers(-2, 1 << 40), max_size=3) | json_values,
    },
)


@FUZZ
@given(
    header=st.dictionaries(st.text(max_size=10), tensor_entry | json_values, max_size=6),
    data_size=st.integers(0, 1 << 20),
)
def test_safetensors_header_structures(header: dict[str, object], data_size: int) -> None:
    started = time.monotonic()
    try:
        parsed = parse_header(json.dumps(header).encode(), data_size)
    except FormatError:
        pass
    else:
        for info in parsed.tensors.values():
            assert 0 <= info.data_offsets[0] <= info.data_offsets[1] <= data_size
    assert time.monotonic() - started < BOUND_SECONDS


@FUZZ
@given(edits=edits, cut=cuts)
def test_gguf_mutations(
    tmp_path_factory: object, edits: list[tuple[int, int]], cut: int | None
) -> None:
    path = Path(tmp_path_factory.mktemp("gg")) / "m.gguf"  # type: ignore[attr-defined]
    path.write_bytes(mutate(GGUF, edits, cut))
    started = time.monotonic()
    with contextlib.suppress(FormatError):
        read_gguf(path)
    assert time.monotonic() - started < BOUND_SECONDS


@FUZZ
@given(edits=edits, cut=cuts)
def test_protobuf_mutations(edits: list[tuple[int, int]], cut: int | None) -> None:
    for data, parse in ((ONNX, parse_onnx), (SAVED_MODEL, parse_saved_model)):
        started = time.monotonic()
        with contextlib.suppress(FormatError):
            parse(mutate(data, edits, cut))  # type: ignore[operator]
        assert time.monotonic() - started < BOUND_SECONDS


def test_safetensors_prefix_only(tmp_path: Path) -> None:
    path = tmp_path / "p.safetensors"
    path.write_bytes(struct.pack("<Q", 2) + b"{}")
    assert read_header(path).tensors == {}
