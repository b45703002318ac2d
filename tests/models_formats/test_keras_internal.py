"""MLS153 for names inside Keras that load files, download, load other models or turn safe
mode off (rules/lists/keras_modules.toml [keras_internal]), in every Keras spelling, in a
.keras config.json and an HDF5 model_config; benign Keras configs stay clean."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fixtures.generate_formats import keras2_config, keras3_config, keras_zip, write_keras_h5
from mlsec.formats.keras import keras_internal_danger

Scan = Callable[..., Any]
INTERNAL = {
    "keras.utils.get_file": {"module": "keras.utils", "class_name": "get_file", "config": {}},
    "keras.src.utils.file_utils.get_file": {
        "module": "keras.src.utils.file_utils",
        "class_name": "get_file",
        "config": {"origin": "http://example.invalid/x"},
    },
    "keras.src.utils.file_utils.extract_archive": {
        "module": "keras.src.utils.file_utils",
        "class_name": "extract_archive",
        "config": {},
    },
    "keras.layers.TFSMLayer": {
        "module": "keras.layers",
        "class_name": "TFSMLayer",
        "config": {"filepath": "/tmp/sm"},
    },
    "keras.models.load_model": {"module": "keras.models", "class_name": "load_model"},
    "keras.saving.load_model": {"module": "keras.saving", "class_name": "load_model"},
    "keras.config.enable_unsafe_deserialization": {
        "module": "keras.config",
        "class_name": "enable_unsafe_deserialization",
        "config": {},
    },
    "tf.keras.utils.get_file": {"module": "tf.keras.utils", "class_name": "get_file"},
    "tensorflow.keras.models.load_model": {
        "module": "tensorflow.keras.models",
        "class_name": "load_model",
    },
    "keras.src.saving.saving_api.load_model": {
        "module": "keras.src.saving",
        "class_name": "function",
        "config": "load_model",
        "registered_name": "function",
    },
    "keras.layers.TFSMLayer (registered)": {
        "module": "keras.layers",
        "class_name": "Layer",
        "registered_name": "TFSMLayer",
    },
}


def _findings(report: Any) -> list[tuple[str, str, str, str | None]]:
    return sorted((f.rule_id, f.severity.value, f.path, f.member) for f in report.findings)


@pytest.mark.parametrize("name", sorted(INTERNAL))
def test_keras_internal_names_in_a_keras_zip_are_critical(
    tmp_path: Path, scan_formats: Scan, name: str
) -> None:
    nested = {"module": "keras.layers", "class_name": "Dense", "config": {"units": 1}}
    nested["config"]["kernel_initializer"] = INTERNAL[name]  # type: ignore[index]
    (tmp_path / "m.keras").write_bytes(keras_zip(keras3_config([nested])))
    report = scan_formats(tmp_path)
    assert _findings(report) == [("MLS153", "critical", "m.keras", "config.json")]


def test_keras_internal_name_in_an_h5_model_config(tmp_path: Path, scan_formats: Scan) -> None:
    layer = {"class_name": "TFSMLayer", "config": {"name": "t", "filepath": "/tmp/sm"}}
    write_keras_h5(tmp_path / "m.h5", keras2_config([layer]))
    report = scan_formats(tmp_path)
    assert _findings(report) == [("MLS153", "critical", "m.h5", None)]
    assert "TFSMLayer" in report.findings[0].message


def test_ordinary_keras_names_stay_clean(tmp_path: Path, scan_formats: Scan) -> None:
    layers = [
        {"module": "keras.layers", "class_name": "Dense", "config": {"units": 1}},
        {"module": "keras.src.layers", "class_name": "Conv2D", "config": {}},
        {"module": "keras.utils", "class_name": "function", "config": "normalize"},
    ]
    (tmp_path / "m.keras").write_bytes(keras_zip(keras3_config(layers)))
    assert _findings(scan_formats(tmp_path)) == []


def test_keras_internal_danger_is_keras_only() -> None:
    assert keras_internal_danger("keras.src.utils.file_utils", "get_file")
    assert keras_internal_danger("tensorflow.python.keras.saving", "save_model")
    assert keras_internal_danger("mylib.utils", "get_file") is None  # judged as MLS152
    assert keras_internal_danger("keras.layers", "Dense") is None
