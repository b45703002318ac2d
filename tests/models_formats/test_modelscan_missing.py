"""Without modelscan (not installable on Python 3.13), the scan says so once and goes on."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from mlsec.analyzers import AnalysisContext
from mlsec.analyzers.modelscan_opinion import ModelscanAnalyzer
from mlsec.config import build_options
from mlsec.models.sniff import FileKind
from mlsec.rules import load_rules
from mlsec.walk import Target


class _Unimportable:
    """A meta path finder that makes ``modelscan`` fail to import with ``error``."""

    def __init__(self, error: ImportError) -> None:
        self.error = error

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.split(".")[0] == "modelscan":
            raise self.error


def _scan_without_modelscan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: ImportError
) -> Any:
    for name in [m for m in sys.modules if m.split(".")[0] == "modelscan"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_Unimportable(error), *sys.meta_path])
    model = tmp_path / "model.pkl"
    model.write_bytes(b"\x80\x04K\x01.")
    size = model.stat().st_size
    target = Target(file=model, relpath="model.pkl", size=size, kind=FileKind.PICKLE)
    ctx = AnalysisContext(options=build_options(tmp_path), rules=load_rules())
    return ModelscanAnalyzer().analyze([target], ctx)


def test_missing_modelscan_is_one_notice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = ModuleNotFoundError("No module named 'modelscan'", name="modelscan")
    result = _scan_without_modelscan(tmp_path, monkeypatch, missing)
    got = [(f.rule_id, f.severity.value, f.path, f.key) for f in result.findings]
    assert got == [("MLS194", "low", ".", "modelscan-missing")]
    assert result.errors == []


def test_broken_modelscan_is_an_error_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = ImportError("cannot import name 'X' from partially initialized module")
    result = _scan_without_modelscan(tmp_path, monkeypatch, broken)
    assert result.findings == []
    assert [(e.path, e.analyzer) for e in result.errors] == [(".", "modelscan")]
    assert "modelscan unavailable" in result.errors[0].message
