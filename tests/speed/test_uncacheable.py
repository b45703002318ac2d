"""An outcome that depends on more than its file (FileOutcome.cacheable False) travels back
from workers as such and never enters the result cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsec import pool, resultcache
from mlsec.analyzers import FileOutcome
from mlsec.config import ScanOptions
from mlsec.findings import ScanError
from mlsec.models.checks import ModelFormatsAnalyzer
from mlsec.scan import scan


def test_the_flag_survives_the_workers_encoding() -> None:
    outcome = FileOutcome(errors=(ScanError("m.onnx", "x"),), cacheable=False)
    back = resultcache.decode_outcome(resultcache.encode_outcome(outcome))
    assert back == outcome and back is not None and back.cacheable is False
    assert resultcache.decode_outcome(resultcache.encode_outcome(FileOutcome())) == FileOutcome()
    assert resultcache.decode_outcome({"c": "no"}) is None  # not a flag: not an outcome


def _onnx_with_external_data(path: Path) -> None:
    from fixtures.generate_formats import onnx_external_data_bytes

    path.write_bytes(onnx_external_data_bytes("w.bin"))
    (path.parent / "w.bin").write_bytes(b"\0" * 64)


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_onnx_model_with_external_data_is_analysed_on_every_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for i in range(3):
        (repo / f"m{i}").mkdir()
        _onnx_with_external_data(repo / f"m{i}" / "model.onnx")
    monkeypatch.setattr(resultcache, "RACY_NS", 0)
    monkeypatch.setattr(pool, "MIN_FILES", 2)
    analysed: list[str] = []
    real = ModelFormatsAnalyzer.analyze_file

    def counted(self: ModelFormatsAnalyzer, target, ctx):  # type: ignore[no-untyped-def]
        analysed.append(target.relpath)
        return real(self, target, ctx)

    monkeypatch.setattr(ModelFormatsAnalyzer, "analyze_file", counted)
    options = ScanOptions(path=repo, jobs=jobs, cache_dir=tmp_path / "cache")
    first = scan(options)
    analysed.clear()
    again = scan(options)
    assert again.findings == first.findings
    if jobs == 1:  # in this process: each file analysed again, none from the cache
        assert sorted(analysed) == [f"m{i}/model.onnx" for i in range(3)]
    stored = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert "model.onnx" not in stored  # from the workers too: no entry to go stale
    assert first.files_scanned == 6
