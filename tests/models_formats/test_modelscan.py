"""modelscan as a second opinion: merged, deduplicated, attributed, never fatal."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("modelscan", reason="modelscan 0.8 installs on Python 3.10-3.12 only")

from mlsec.analyzers import AnalysisContext
from mlsec.analyzers.modelscan_opinion import ModelscanAnalyzer
from mlsec.config import build_options
from mlsec.errors import ConfigError
from mlsec.models.sniff import FileKind
from mlsec.rules import load_rules
from mlsec.walk import Target


def pickle_calling(module: str, name: str, arg: str = "x", protocol: int = 2) -> bytes:
    """A pickle that would call module.name(arg) when loaded (built, never loaded)."""
    body = f"c{module}\n{name}\n".encode() + b"X" + len(arg).to_bytes(4, "little") + arg.encode()
    return b"\x80" + bytes([protocol]) + body + b"\x85R."


def target(path: Path, root: Path, kind: FileKind = FileKind.PICKLE) -> Target:
    return Target(
        file=path, relpath=path.relative_to(root).as_posix(), size=path.stat().st_size, kind=kind
    )


def run(root: Path, targets: list[Target], earlier: tuple[Any, ...] = ()) -> Any:
    ctx = AnalysisContext(options=build_options(root), rules=load_rules(), findings=earlier)
    return ModelscanAnalyzer().analyze(targets, ctx)


def test_reports_what_mlsec_did_not(tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(pickle_calling("webbrowser", "open", "http://x"))
    (tmp_path / "renamed.txt").write_bytes(pickle_calling("os", "system", "echo"))
    result = run(
        tmp_path, [target(tmp_path / "m.pkl", tmp_path), target(tmp_path / "renamed.txt", tmp_path)]
    )
    got = sorted(
        (f.rule_id, f.severity.value, f.path, f.member, f.source, f.key) for f in result.findings
    )
    assert got == [
        ("MLS190", "critical", "renamed.txt", None, "modelscan", "modelscan:os.system"),
        ("MLS191", "high", "m.pkl", None, "modelscan", "modelscan:webbrowser.open"),
    ]


def test_deduplicates_against_earlier_findings(tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(pickle_calling("posix", "system", "echo"))
    rules = load_rules()
    earlier = (rules.finding("MLS101", "m.pkl", "Pickle imports os.system", key="os.system"),)
    result = run(tmp_path, [target(tmp_path / "m.pkl", tmp_path)], earlier)
    assert result.findings == []
    other = (rules.finding("MLS101", "other.pkl", "Pickle imports os.system", key="os.system"),)
    result = run(tmp_path, [target(tmp_path / "m.pkl", tmp_path)], other)
    assert [f.rule_id for f in result.findings] == ["MLS190"]


def test_zip_member_attributed(tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "model.pt", "w") as archive:
        archive.writestr("archive/data.pkl", pickle_calling("webbrowser", "open"))
        archive.writestr("archive/version", "3\n")
    result = run(tmp_path, [target(tmp_path / "model.pt", tmp_path, FileKind.ZIP)])
    assert [(f.rule_id, f.path, f.member) for f in result.findings] == [
        ("MLS191", "model.pt", "archive/data.pkl")
    ]


def test_repo_settings_file_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disable_all = "\n".join(
        f'[scanners."modelscan.scanners.{name}"]\nenabled = false\n'
        for name in ("PickleUnsafeOpScan", "PyTorchUnsafeOpScan", "NumpyUnsafeOpScan")
    )
    (tmp_path / "modelscan-settings.toml").write_text(disable_all)
    (tmp_path / "m.pkl").write_bytes(pickle_calling("os", "system"))
    monkeypatch.chdir(tmp_path)
    result = run(tmp_path, [target(tmp_path / "m.pkl", tmp_path)])
    assert [f.rule_id for f in result.findings] == ["MLS190"]


def test_failures_are_recorded_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    np.save(tmp_path / "a.npy", np.arange(3))
    (tmp_path / "m.pkl").write_bytes(pickle_calling("os", "system"))
    result = run(tmp_path, [target(tmp_path / "a.npy", tmp_path, FileKind.NUMPY)])
    assert result.errors == []
    if not hasattr(np.lib.format, "_check_version"):  # NumPy 2: one notice, not one per file
        assert [(f.rule_id, f.severity.value, f.path, f.source) for f in result.findings] == [
            ("MLS194", "low", ".", "modelscan")
        ]
        assert "NumPy" in result.findings[0].message

    from modelscan.modelscan import ModelScan

    def boom(self: Any, path: Any) -> Any:
        raise RuntimeError("scanner exploded")

    monkeypatch.setattr(ModelScan, "scan", boom)
    from mlsec import native

    monkeypatch.setattr(native, "call", native.call_in_process)  # the patch applies here only
    result = run(tmp_path, [target(tmp_path / "m.pkl", tmp_path)])
    assert result.errors == []
    assert [(f.rule_id, f.severity.value, f.path) for f in result.findings] == [
        ("MLS194", "low", "m.pkl")
    ]
    assert "scanner exploded" in result.findings[0].message


def test_parse_failure_notice_unless_mlsec_says_corrupt(tmp_path: Path) -> None:
    (tmp_path / "cut.pkl").write_bytes(pickle_calling("os", "system")[:-3])
    result = run(tmp_path, [target(tmp_path / "cut.pkl", tmp_path)])
    assert [(f.rule_id, f.path) for f in result.findings] == [("MLS194", "cut.pkl")]
    corrupt = (load_rules().finding("MLS100", "cut.pkl", "Pickle stream is corrupt", key="c"),)
    result = run(tmp_path, [target(tmp_path / "cut.pkl", tmp_path)], corrupt)
    assert result.findings == [] and result.errors == []


def test_big_files_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlsec.analyzers.modelscan_opinion as opinion

    (tmp_path / "m.pkl").write_bytes(pickle_calling("os", "system"))
    monkeypatch.setattr(opinion, "MAX_BYTES", 10)
    assert run(tmp_path, [target(tmp_path / "m.pkl", tmp_path)]).findings == []


def test_turned_off_by_config(tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(pickle_calling("os", "system"))
    (tmp_path / ".mlsec.toml").write_text("[models]\nmodelscan = false\n")
    assert run(tmp_path, [target(tmp_path / "m.pkl", tmp_path)]).findings == []
    (tmp_path / ".mlsec.toml").write_text("[models]\nmodelscan = 'no'\n")
    with pytest.raises(ConfigError, match="modelscan"):
        run(tmp_path, [target(tmp_path / "m.pkl", tmp_path)])


def test_benign_pickle_no_finding(tmp_path: Path) -> None:
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps({"a": [1, 2.0, "x"]}))
    result = run(tmp_path, [target(tmp_path / "ok.pkl", tmp_path)])
    assert result.findings == [] and result.errors == []
    assert {r for r in load_rules() if r.startswith("MLS19")} == {
        "MLS190",
        "MLS191",
        "MLS192",
        "MLS193",
        "MLS194",
    }


def test_h5_lambda_not_reported_twice(tmp_path: Path) -> None:
    import base64

    from fixtures.generate_formats import keras2_config, write_keras_h5
    from mlsec.scan import scan

    code = base64.encodebytes(b"\xe3\x00\x00\x00\xda\x02xy").decode()
    lam = {
        "class_name": "Lambda",
        "config": {"name": "l", "function": [code, None, None], "function_type": "lambda"},
    }
    write_keras_h5(tmp_path / "m.h5", keras2_config([lam]))
    report = scan(build_options(tmp_path))
    assert [(f.rule_id, f.source) for f in report.findings] == [("MLS150", "mlsec")]
    # ...while modelscan alone does see it (so the deduplication above is what hid it)
    alone = run(tmp_path, [target(tmp_path / "m.h5", tmp_path, FileKind.HDF5)])
    assert [(f.rule_id, f.severity.value, f.key) for f in alone.findings] == [
        ("MLS192", "medium", "modelscan:Keras.Lambda")
    ]


def test_zip_bomb_not_handed_to_modelscan(tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.pkl", pickle_calling("os", "system") + b"\0" * (8 * 1024**2))
    result = run(tmp_path, [target(tmp_path / "bomb.zip", tmp_path, FileKind.ZIP)])
    assert result.findings == [] and result.errors == []  # not handed to modelscan at all
    with zipfile.ZipFile(tmp_path / "ok.zip", "w") as archive:
        archive.writestr("a.pkl", pickle_calling("os", "system"))
    result = run(tmp_path, [target(tmp_path / "ok.zip", tmp_path, FileKind.ZIP)])
    assert [(f.rule_id, f.member) for f in result.findings] == [("MLS190", "a.pkl")]


def test_keras_archives_skipped_without_tensorflow(tmp_path: Path) -> None:
    import importlib.util

    from fixtures.generate_formats import keras3_config, keras_zip

    (tmp_path / "m.keras").write_bytes(keras_zip(keras3_config(), weights=b"not hdf5"))
    result = run(tmp_path, [target(tmp_path / "m.keras", tmp_path, FileKind.ZIP)])
    if importlib.util.find_spec("tensorflow") is None:
        assert result.findings == [] and result.errors == []
