"""The format registry is the one source: every kind has a row, every check exists, and
sniffing, the BOM's weights, modelscan's routing and the leaf checks read it."""

from __future__ import annotations

import pytest

from mlsec.models.checks import FormatChecks
from mlsec.models.registry import (
    ALWAYS_WEIGHTS,
    BY_NAME,
    FACT_FORMATS,
    FORMATS,
    MAYBE_WEIGHTS,
    MODELSCAN_ROUTES,
    ROW_OF_KIND,
    WALKED,
    WEIGHT_EXTENSIONS,
    FileKind,
    is_weight_file,
    leaf_format,
    member_format,
)
from mlsec.models.sniff import sniff
from tests.conftest import FIXTURES


def test_every_content_kind_has_a_row_and_names_are_unique() -> None:
    assert set(ROW_OF_KIND) == set(FileKind) - {FileKind.EMPTY, FileKind.TEXT}
    assert len(BY_NAME) == len(FORMATS)


@pytest.mark.parametrize("row", [r for r in FORMATS if r.check], ids=lambda r: r.name)
def test_every_check_is_a_method_of_the_format_checks(row) -> None:
    assert callable(getattr(FormatChecks, "_" + row.check))


def test_walked_kinds_are_the_pickle_carriers() -> None:
    assert {r.name for r in FORMATS if r.walk} == {r.name for r in FORMATS if r.pickles}
    assert FileKind.PICKLE in WALKED and FileKind.SAFETENSORS not in WALKED


def test_bom_weights_derive_from_the_registry() -> None:
    # What the BOM counted before the registry, kept.
    assert {
        FileKind.SAFETENSORS,
        FileKind.GGUF,
        FileKind.ONNX,
        FileKind.TF_SAVEDMODEL,
    } == ALWAYS_WEIGHTS
    assert {FileKind.PICKLE, FileKind.ZIP, FileKind.HDF5, FileKind.NUMPY} <= MAYBE_WEIGHTS
    assert {".safetensors", ".pt", ".pth", ".ckpt", ".keras", ".tflite", ".npz"} <= (
        WEIGHT_EXTENSIONS
    )
    assert ".npy" not in WEIGHT_EXTENSIONS and ".dat" not in WEIGHT_EXTENSIONS
    assert is_weight_file(FileKind.TAR, "resnet.pth")  # a legacy torch tar
    assert not is_weight_file(FileKind.BINARY, "grid.dat")
    from mlsec.aibom import discover

    assert discover._ALWAYS_WEIGHTS is ALWAYS_WEIGHTS


def test_modelscan_routes_derive_from_the_registry() -> None:
    from mlsec.analyzers import modelscan_opinion

    assert modelscan_opinion._KIND_FORMATS is MODELSCAN_ROUTES
    assert dict(MODELSCAN_ROUTES) == {
        FileKind.PICKLE: "PICKLE",
        FileKind.NUMPY: "NUMPY",
        FileKind.HDF5: "KERAS_H5",
        FileKind.ZIP: None,
        FileKind.TF_SAVEDMODEL: "TENSORFLOW",
    }


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        (FileKind.ZIP, "m.keras", "zip"),
        (FileKind.HDF5, "m.keras", "keras-h5"),
        (FileKind.BINARY, "m.keras", "keras"),
        (FileKind.TEXT, "tok/tokenizer_config.json", "chat-template"),
        (FileKind.PICKLE, "x.safetensors", "safetensors"),
        (FileKind.GGUF, "x.safetensors", "gguf"),
        (FileKind.BINARY, "keras_metadata.pb", "keras-metadata"),
        (FileKind.TEXT, "frozen.pb", "tf-graphdef"),
        (FileKind.BINARY, "blob", "onnx"),
        (FileKind.TEXT, "README.md", None),
        (FileKind.PICKLE, "model.pkl", None),
    ],
)
def test_leaf_format(kind: FileKind, name: str, expected: str | None) -> None:
    row = leaf_format(kind, name)
    assert (row.name if row else None) == expected


def test_leaf_format_shortcut_gives_the_full_answer() -> None:
    """The walk asks of every file; its shortcut for names no row or template can match must
    answer as the full test does, for every kind and every name ending a row knows."""
    from mlsec.models.registry import _leaf_format

    names = ["src/app.py", "README.md", "blob", "model.bin", "a/B.ONNX", "x.PB", "Makefile"]
    names += [f"dir/file{ending}" for row in FORMATS for ending in (*row.names, *row.extensions)]
    names += ["tokenizer_config.json", "my_chat_template.j2", "additional_chat_templates/t.jinja"]
    names += ["page.jinja2", "config.json", "saved_model.pbtxt", "x.gguf.txt"]
    for kind in FileKind:
        for name in names:
            assert leaf_format(kind, name) == _leaf_format(kind, name.lower()), (kind, name)


def test_member_format_leaves_zips_and_unknown_binaries_to_the_walk() -> None:
    assert member_format(FileKind.ZIP, "inner.keras") is None
    assert member_format(FileKind.BINARY, "blob") is None
    assert member_format(FileKind.PICKLE, "x.safetensors") is None
    assert member_format(FileKind.SAFETENSORS, "data").name == "safetensors"


def test_facts_name_registry_formats(tmp_path) -> None:
    from mlsec.config import build_options
    from mlsec.scan import scan

    analyzers = (
        "mlsec.models.containers:PickleModelsAnalyzer",
        "mlsec.models.checks:ModelFormatsAnalyzer",
    )
    seen = set()
    for folder in ("models", "formats", "torchscript"):
        report = scan(build_options(FIXTURES / folder, use_git=False), analyzers=analyzers)
        for facts in report.facts.values():
            seen |= {f.format for f in facts.files}
    assert seen and seen <= FACT_FORMATS, seen - FACT_FORMATS


def test_magic_rows_are_recognised() -> None:
    samples = {
        "zip": b"PK\x03\x04" + bytes(40),
        "gzip": b"\x1f\x8b\x08" + bytes(20),
        "zstd": b"\x28\xb5\x2f\xfd" + bytes(20),
        "joblib-zfile": b"ZF0x1f" + b" " * 15 + b"x\x9c",
        "gguf": b"GGUF\x03\x00\x00\x00" + bytes(20),
        "numpy": b"\x93NUMPY\x01\x00" + bytes(20),
    }
    for name, head in samples.items():
        assert sniff(head, "f") in BY_NAME[name].kinds, name
