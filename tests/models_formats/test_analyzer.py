"""The model-formats analyzer: each technique with its rule, severity, file and member."""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fixtures.generate_formats import (
    BENIGN_TEMPLATE,
    keras2_config,
    keras3_config,
    keras_zip,
    onnx_model_bytes,
    saved_model_pb,
    write_gguf,
    write_keras_h5,
    write_safetensors,
)
from mlsec.facts import ModelFacts
from mlsec.findings import Severity

from .conftest import only

FORMATS = Path(__file__).resolve().parents[2] / "fixtures" / "formats"
Scan = Callable[..., Any]


def rules_of(report: Any) -> list[tuple[str, str, str, str | None]]:
    return sorted((f.rule_id, f.severity.value, f.path, f.member) for f in report.findings)


def test_benign_fixtures_clean_and_facts(tmp_path: Path, scan_formats: Scan) -> None:
    shutil.copytree(FORMATS, tmp_path / "m")
    report = scan_formats(tmp_path / "m")
    assert not any(f.severity.rank > Severity.MEDIUM.rank for f in report.findings)
    assert report.findings == ()
    assert report.errors == ()
    facts = report.facts["model-formats"]
    assert isinstance(facts, ModelFacts)
    by_path = {f.path: f for f in facts.files}
    assert {p: (f.format, f.framework, f.parameter_count) for p, f in by_path.items()} == {
        "model.gguf": ("gguf", "gguf", 256),
        "model.h5": ("keras-h5", "keras", 10),  # kernel 4x2 and bias 2: weight shapes
        "model.keras": ("keras", "keras", None),
        "model.onnx": ("onnx", "onnx", 12),
        "model.safetensors": ("safetensors", "pytorch", 36),
        "saved_model/saved_model.pb": ("tf-savedmodel", "tensorflow", None),
    }
    assert by_path["model.gguf"].metadata["general.license"] == "apache-2.0"
    assert by_path["model.onnx"].metadata["producer_name"] == "mlsec-fixtures"
    assert by_path["model.onnx"].metadata["opset_imports"] == {"": 17}
    assert by_path["model.safetensors"].metadata["metadata"] == {"format": "pt"}
    assert by_path["model.keras"].metadata["class_name"] == "Sequential"
    json.dumps(facts.to_json())


# -- safetensors ---------------------------------------------------------------------------------
def test_safetensors_bad_header(tmp_path: Path, scan_formats: Scan) -> None:
    (tmp_path / "w.safetensors").write_bytes(struct.pack("<Q", 10) + b'{"a": [1,}')
    # Not sniffed as safetensors (too short) nor by a valid header: the name still counts.
    (tmp_path / "x.safetensors").write_bytes(struct.pack("<Q", 1 << 50) + b"{}")
    report = scan_formats(tmp_path)
    assert rules_of(report) == [
        ("MLS140", "medium", "w.safetensors", None),
        ("MLS140", "medium", "x.safetensors", None),
    ]
    assert "not valid JSON" in only(report, "MLS140")[0].message


def test_safetensors_overlap_and_hidden_bytes(tmp_path: Path, scan_formats: Scan) -> None:
    header = json.dumps(
        {
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
        }
    ).encode()
    (tmp_path / "overlap.safetensors").write_bytes(
        struct.pack("<Q", len(header)) + header + bytes(8)
    )
    write_safetensors(tmp_path / "hidden.safetensors", hidden=b"\x80\x04cos\nsystem\n")
    report = scan_formats(tmp_path)
    assert rules_of(report) == [
        ("MLS140", "medium", "overlap.safetensors", None),
        ("MLS141", "low", "hidden.safetensors", None),
    ]
    assert "overlaps" in only(report, "MLS140")[0].message


# -- GGUF ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "rule", "severity"),
    [
        (
            "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('id').read() }}",
            "MLS143",
            "critical",
        ),
        ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", "MLS143", "critical"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "MLS143", "critical"),
        ("{{ lipsum['__globals__']['os'] }}", "MLS143", "critical"),
        ("{{ ()|attr('__class__') }}", "MLS143", "critical"),
        ("{{ ()|attr('\\x5f\\x5fclass\\x5f\\x5f') }}", "MLS143", "critical"),
        ("{{ ()|attr('__cla' ~ 'ss__') }}", "MLS143", "critical"),
        ("{{ [cycler]|map(attribute='__init__.__globals__')|list }}", "MLS143", "critical"),
        ("{{ messages|map(attribute=messages[0].content)|list }}", "MLS145", "high"),
        ("{% set n = messages[0].content %}{{ ()|attr(n) }}", "MLS145", "high"),
        ("{% for m in messages %}{{ m.content }}{% endfor", "MLS144", "medium"),
    ],
)
def test_gguf_chat_template(
    tmp_path: Path, scan_formats: Scan, template: str, rule: str, severity: str
) -> None:
    write_gguf(tmp_path / "chat.gguf", template)
    report = scan_formats(tmp_path)
    assert (rule, severity, "chat.gguf", "tokenizer.chat_template") in rules_of(report)
    assert all(f.severity.rank <= Severity[severity.upper()].rank for f in report.findings)


def test_gguf_named_templates_and_benign(tmp_path: Path, scan_formats: Scan) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "multi.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_chat_template(
        [
            {"name": "default", "template": BENIGN_TEMPLATE},
            {"name": "tool_use", "template": "{{ x.__class__ }}"},
        ]
    )
    writer.add_tensor("w", np.zeros(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    report = scan_formats(tmp_path)
    assert rules_of(report) == [
        ("MLS143", "critical", "multi.gguf", "tokenizer.chat_template.tool_use")
    ]


def test_gguf_benign_hf_style_template(tmp_path: Path, scan_formats: Scan) -> None:
    template = (
        "{{ bos_token }}{% for message in messages %}"
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate') }}{% endif %}"
        "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] | trim }}"
        "{% endgeneration %}{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
        "{% if loop.last %}{% break %}{% endif %}{% endfor %}"
    )
    write_gguf(tmp_path / "ok.gguf", template)
    assert scan_formats(tmp_path).findings == ()


def test_gguf_corrupt(tmp_path: Path, scan_formats: Scan) -> None:
    data = (FORMATS / "model.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[:200])
    (tmp_path / "renamed.bin").write_bytes(b"GGUF" + struct.pack("<I", 99))
    report = scan_formats(tmp_path)
    assert rules_of(report) == [
        ("MLS142", "medium", "cut.gguf", None),
        ("MLS142", "medium", "renamed.bin", None),
    ]


# -- ONNX ------------------------------------------------------------------------------------------
def _onnx_with_external(location: str, domain: str | None = None) -> bytes:
    import onnx

    from fixtures.generate_formats import onnx_external_data_bytes

    data = onnx_external_data_bytes(location)
    if not domain:
        return data
    model = onnx.load_from_string(data)
    model.graph.node[1].domain = domain
    model.opset_import.add(domain=domain, version=1)
    return bytes(model.SerializeToString())


@pytest.mark.parametrize(
    "location", ["/etc/passwd", "../../secrets/key", "weights/..\\..\\x", "C:\\Windows\\win.ini"]
)
def test_onnx_external_data_escape(tmp_path: Path, scan_formats: Scan, location: str) -> None:
    (tmp_path / "m.onnx").write_bytes(_onnx_with_external(location))
    report = scan_formats(tmp_path)
    assert rules_of(report) == [("MLS147", "high", "m.onnx", None)]
    assert only(report, "MLS147")[0].details["location"] == location


def test_onnx_external_data_symlink_out(tmp_path: Path, scan_formats: Scan) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"x" * 48)
    model_dir = tmp_path / "repo"
    model_dir.mkdir()
    os.symlink(outside / "secret.bin", model_dir / "weights.bin")
    (model_dir / "m.onnx").write_bytes(_onnx_with_external("weights.bin"))
    (model_dir / "ok.onnx").write_bytes(_onnx_with_external("data/ok.bin"))
    report = scan_formats(model_dir)
    assert [(r, p) for r, _s, p, _m in rules_of(report) if r == "MLS147"] == [("MLS147", "m.onnx")]


def test_onnx_custom_domain_and_renamed(tmp_path: Path, scan_formats: Scan) -> None:
    import onnx

    model = onnx.load_from_string(onnx_model_bytes())
    model.graph.node[1].domain = "com.attacker"
    model.opset_import.add(domain="com.attacker", version=1)
    (tmp_path / "weights.bin").write_bytes(model.SerializeToString())  # ONNX by content
    ms = onnx.load_from_string(onnx_model_bytes())
    ms.graph.node[1].domain = "com.microsoft"
    (tmp_path / "ort.onnx").write_bytes(ms.SerializeToString())
    report = scan_formats(tmp_path)
    assert rules_of(report) == [("MLS148", "low", "weights.bin", None)]
    facts = {f.path: f for f in report.facts["model-formats"].files}
    assert facts["weights.bin"].max_severity is Severity.LOW
    assert facts["weights.bin"].metadata["custom_domains"] == ["com.attacker"]


def test_onnx_corrupt(tmp_path: Path, scan_formats: Scan) -> None:
    (tmp_path / "cut.onnx").write_bytes(onnx_model_bytes()[:50])
    (tmp_path / "random.bin").write_bytes(b"\x08\x07" + os.urandom(64))
    report = scan_formats(tmp_path)
    assert rules_of(report) == [("MLS146", "medium", "cut.onnx", None)]


# -- Keras ----------------------------------------------------------------------------------------
def _lambda3(code: bytes) -> dict[str, object]:
    return {
        "module": "keras.layers",
        "class_name": "Lambda",
        "registered_name": None,
        "config": {
            "name": "lam",
            "function": {
                "class_name": "__lambda__",
                "config": {"code": base64.b64encode(code).decode(), "defaults": None},
            },
        },
    }


def test_keras_lambda(tmp_path: Path, scan_formats: Scan) -> None:
    (tmp_path / "plain.keras").write_bytes(
        keras_zip(keras3_config([_lambda3(b"\xe3\x00\x00\x00x\x00\x02y\x00square")]))
    )
    (tmp_path / "evil.keras").write_bytes(
        keras_zip(keras3_config([_lambda3(b"\xe3\x00\x00\x00\xda\x02os\xda\x06system")]))
    )
    report = scan_formats(tmp_path)
    assert rules_of(report) == [
        ("MLS150", "high", "plain.keras", "config.json"),
        ("MLS151", "critical", "evil.keras", "config.json"),
    ]
    assert "os, system" in only(report, "MLS151")[0].message


def test_keras_modules(tmp_path: Path, scan_formats: Scan) -> None:
    custom = {
        "module": "my_company.layers",
        "class_name": "Attention",
        "registered_name": "MyCo>Attention",
        "config": {},
    }
    func = {
        "module": "os",
        "class_name": "function",
        "config": "system",
        "registered_name": "function",
    }
    (tmp_path / "m.keras").write_bytes(keras_zip(keras3_config([custom, func])))
    report = scan_formats(tmp_path)
    assert rules_of(report) == [
        ("MLS152", "high", "m.keras", "config.json"),
        ("MLS153", "critical", "m.keras", "config.json"),
    ]
    assert "os.system" in only(report, "MLS153")[0].message


def test_keras_h5_lambda(tmp_path: Path, scan_formats: Scan) -> None:
    code = base64.encodebytes(b"\xe3\x00\x00\x00\xda\x0a__import__\xda\nsubprocess").decode()
    lam = {
        "class_name": "Lambda",
        "config": {"name": "l", "function": [code, None, None], "function_type": "lambda"},
    }
    write_keras_h5(tmp_path / "m.h5", keras2_config([lam]))
    named = {
        "class_name": "Lambda",
        "config": {
            "name": "f",
            "function": "helper",
            "function_type": "function",
            "module": "my_utils",
        },
    }
    write_keras_h5(tmp_path / "n.h5", keras2_config([named]))
    report = scan_formats(tmp_path)
    assert rules_of(report) == [
        ("MLS151", "critical", "m.h5", None),
        ("MLS152", "high", "n.h5", None),
    ]


def test_keras_broken(tmp_path: Path, scan_formats: Scan) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as archive:
        archive.writestr("config.json", "{nope")
        archive.writestr("metadata.json", "{}")
    (tmp_path / "text.keras").write_bytes(b"\x00\x01 not a model")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:  # not Keras: ignored
        archive.writestr("readme.txt", "hi")
    report = scan_formats(tmp_path)
    assert rules_of(report) == [
        ("MLS149", "medium", "bad.keras", None),
        ("MLS149", "medium", "text.keras", None),
    ]


# -- SavedModel ------------------------------------------------------------------------------------
def test_saved_model_ops(tmp_path: Path, scan_formats: Scan) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "saved_model.pb").write_bytes(
        saved_model_pb(
            [("x", "Placeholder"), ("SaveV2", "SaveV2"), ("rf", "ReadFile")],
            ["PyFunc", "WriteFile"],
        )
    )
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "saved_model.pb").write_bytes(b"\x12\x05\x0a\xff\xff\xff\x0f")
    report = scan_formats(tmp_path)
    assert rules_of(report) == [
        ("MLS154", "medium", "b/saved_model.pb", None),
        ("MLS155", "high", "a/saved_model.pb", None),
        ("MLS156", "high", "a/saved_model.pb", None),
        ("MLS157", "medium", "a/saved_model.pb", None),
    ]
    assert {f.key for f in report.findings} >= {"op:PyFunc", "op:WriteFile", "op:ReadFile"}


def test_demo_repo_shows_formats(scan_formats: Scan) -> None:
    demo = Path(__file__).resolve().parents[2] / "fixtures" / "demo-repo"
    report = scan_formats(demo)
    assert (
        "MLS143",
        "critical",
        "models/formats/chat-model.gguf",
        "tokenizer.chat_template",
    ) in rules_of(report)
    assert ("MLS141", "low", "models/formats/weights.safetensors", None) in rules_of(report)


# -- Keras 2 SavedModel metadata -------------------------------------------------------------
def _keras_metadata_pb(layers: list[tuple[str, dict[str, object]]]) -> bytes:
    from fixtures.generate_formats import pb_bytes, pb_int

    return b"".join(
        pb_bytes(
            1,
            pb_int(2, i)
            + pb_bytes(3, path)
            + pb_bytes(4, "_tf_keras_layer")
            + pb_bytes(5, json.dumps(meta)),
        )
        for i, (path, meta) in enumerate(layers)
    )


def test_keras_saved_model_metadata_lambda(tmp_path: Path, scan_formats: Scan) -> None:
    code = base64.encodebytes(b"\xe3\x00\x00\x00\xda\x02os\xda\x06system").decode()
    lam = {
        "class_name": "Lambda",
        "name": "lambda",
        "config": {
            "name": "lambda",
            "function_type": "lambda",
            "function": {"class_name": "__tuple__", "items": [code, None, None]},
        },
    }
    root = {
        "class_name": "Sequential",
        "name": "seq",
        "config": {"name": "seq", "layers": [{"class_name": "Dense", "config": {}}, lam]},
    }
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "keras_metadata.pb").write_bytes(
        _keras_metadata_pb([("root", root), ("root.layer-1", lam)])
    )
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "keras_metadata.pb").write_bytes(
        _keras_metadata_pb([("root", {"class_name": "Sequential", "config": {"layers": []}})])
    )
    report = scan_formats(tmp_path)
    assert rules_of(report) == [("MLS151", "critical", "evil/keras_metadata.pb", None)]
    facts = {f.path: f for f in report.facts["model-formats"].files}
    assert facts["ok/keras_metadata.pb"].format == "keras-savedmodel"


def test_onnx_external_data_nul(tmp_path: Path, scan_formats: Scan) -> None:
    (tmp_path / "m.onnx").write_bytes(_onnx_with_external("w.bin\x00/../../etc/passwd"))
    report = scan_formats(tmp_path)
    assert rules_of(report) == [("MLS147", "high", "m.onnx", None)]


def test_gguf_oversized_template(tmp_path: Path, scan_formats: Scan, monkeypatch: Any) -> None:
    import mlsec.formats.gguf as gguf_format

    monkeypatch.setattr(gguf_format, "KEEP_TEMPLATE", 64)
    write_gguf(tmp_path / "big.gguf", "{{ m }}" * 20 + "{{ x.__class__ }}")
    report = scan_formats(tmp_path)
    assert rules_of(report) == [("MLS170", "high", "big.gguf", "tokenizer.chat_template")]


def test_frozen_graph_def_and_pbtxt(tmp_path: Path, scan_formats: Scan) -> None:
    from fixtures.generate_formats import pb_bytes

    graph_def = b"".join(
        pb_bytes(1, pb_bytes(1, name) + pb_bytes(2, op))
        for name, op in (("x", "Placeholder"), ("w", "WriteFile"))
    )
    (tmp_path / "frozen.pb").write_bytes(graph_def)
    (tmp_path / "tm").mkdir()
    (tmp_path / "tm" / "saved_model.pbtxt").write_text(
        'saved_model_schema_version: 1\nmeta_graphs {\n  meta_info_def { tags: "serve" }\n'
        '  graph_def {\n    node { name: "p" op: "EagerPyFunc" }\n'
        '    node { name: "s" op: "SaveV2" }\n  }\n}\n'
    )
    (tmp_path / "junk.pb").write_bytes(b"\xff\xfe not protobuf")
    report = scan_formats(tmp_path)
    assert rules_of(report) == [
        ("MLS155", "high", "tm/saved_model.pbtxt", None),
        ("MLS156", "high", "frozen.pb", None),
    ]


def test_hugging_face_template_files(tmp_path: Path, scan_formats: Scan) -> None:
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": "{{ lipsum.__globals__['os'].popen('id').read() }}"})
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "chat_template": [
                    {"name": "default", "template": BENIGN_TEMPLATE},
                    {"name": "rag", "template": "{{ ()|attr(x) }}"},
                ]
            }
        )
    )
    (tmp_path / "chat_template.jinja").write_text(BENIGN_TEMPLATE)
    (tmp_path / "other.json").write_text(json.dumps({"chat_template": "{{ x.__class__ }}"}))
    report = scan_formats(tmp_path)
    assert rules_of(report) == [
        ("MLS143", "critical", "tokenizer_config.json", "chat_template"),
        ("MLS145", "high", "sub/tokenizer_config.json", "chat_template.rag"),
    ]


def test_keras_corrupt_deflate_and_version(tmp_path: Path, scan_formats: Scan) -> None:
    data = bytearray((FORMATS / "model.keras").read_bytes())
    start = data.index(b"config.json") + len("config.json")  # the local header's name
    for offset in range(start + 2, start + 40):
        data[offset] ^= 0x5A  # garble the deflate stream of config.json
    (tmp_path / "garbled.keras").write_bytes(bytes(data))
    report = scan_formats(tmp_path)
    assert rules_of(report) == [("MLS149", "medium", "garbled.keras", None)]
    assert report.errors == ()


def test_deeply_nested_template_is_not_silently_passed(tmp_path: Path, scan_formats: Scan) -> None:
    write_gguf(
        tmp_path / "deep.gguf", "{% if a %}" * 600 + "{{ x.__class__ }}" + "{% endif %}" * 600
    )
    report = scan_formats(tmp_path)
    assert rules_of(report) == [("MLS170", "high", "deep.gguf", "tokenizer.chat_template")]
