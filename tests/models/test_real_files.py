"""Real files from public packages (fixtures/real/, licences beside them): not-pickles stay
clean whatever their extension, and old joblib formats are read, not called corrupt."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsec.models.registry import FileKind
from mlsec.models.sniff import HEAD_SIZE, sniff
from tests.conftest import FIXTURES
from tests.models.conftest import MODEL_ANALYZERS

REAL = FIXTURES / "real"
DATA = (".sav", ".dat", ".mat", ".gz", ".z", ".lzma", ".pkl", ".npy")


def _scan(folder: Path):
    from mlsec.config import build_options
    from mlsec.scan import scan

    return scan(build_options(folder, use_git=False), analyzers=MODEL_ANALYZERS)


@pytest.mark.parametrize(
    "path", sorted(p for p in (REAL / "scipy").iterdir() if p.suffix in DATA), ids=lambda p: p.name
)
def test_scipy_data_files_are_not_pickles(path: Path) -> None:
    data = path.read_bytes()
    assert sniff(data[:HEAD_SIZE], path.name, len(data)) is not FileKind.PICKLE


def test_scipy_data_files_raise_nothing() -> None:
    report = _scan(REAL / "scipy")
    assert report.findings == () or list(report.findings) == [], report.findings
    assert not report.errors


def test_old_joblib_files_are_read() -> None:
    report = _scan(REAL / "joblib")
    assert not report.errors
    assert not [f for f in report.findings if f.rule_id == "MLS100"], report.findings
    assert {f.severity.value for f in report.findings} <= {"info", "low", "medium"}
    pickled = {f.path for f in report.facts["models"].files if f.metadata.get("pickles")}
    expected = {p.name for p in (REAL / "joblib").iterdir() if p.suffix in (".gz", ".lzma", ".pkl")}
    assert expected <= pickled, expected - pickled
    compression = {f.path: f.metadata.get("compression") for f in report.facts["models"].files}
    assert compression["joblib_0.8.4_compressed_pickle_py27_np17.gz"] == "zlib (joblib zfile)"
