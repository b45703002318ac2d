"""modelscan is asked only where it can change the verdict ([models] modelscan = "auto")."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlsec import native
from mlsec.config import ScanOptions
from mlsec.errors import ConfigError
from mlsec.scan import scan

REPO = Path(__file__).resolve().parents[2]


def _tree(root: Path) -> None:
    (root / "clean.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0], "name": "m"}))
    # Cut short: mlsec cannot read it to its end (MLS100), so modelscan may add something.
    (root / "cut.pkl").write_bytes(pickle.dumps({"weights": list(range(50))})[:-9])


def _asked(root: Path, monkeypatch: pytest.MonkeyPatch, mode: object | None = None) -> list[str]:
    calls: list[str] = []

    def fake(name: str, args: dict[str, Any], *, timeout: float) -> Any:
        calls.append(Path(str(args["path"])).name)
        return {"issues": [], "errors": []}

    monkeypatch.setattr(native, "call", fake)
    sections = {} if mode is None else {"models": {"modelscan": mode}}
    report = scan(ScanOptions(path=root, sections=sections))
    assert "cut.pkl" in {f.path for f in report.findings if f.rule_id == "MLS100"}
    return sorted(calls)


def test_auto_asks_only_about_files_mlsec_could_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("modelscan", reason="modelscan 0.8 installs on Python 3.10-3.12 only")
    _tree(tmp_path)
    assert _asked(tmp_path, monkeypatch) == ["cut.pkl"]
    assert _asked(tmp_path, monkeypatch, True) == ["cut.pkl"]
    assert _asked(tmp_path, monkeypatch, "auto") == ["cut.pkl"]
    assert _asked(tmp_path, monkeypatch, "always") == ["clean.pkl", "cut.pkl"]
    assert _asked(tmp_path, monkeypatch, "off") == []
    assert _asked(tmp_path, monkeypatch, False) == []


def test_unknown_mode_is_a_config_error(tmp_path: Path) -> None:
    _tree(tmp_path)
    with pytest.raises(ConfigError, match='"auto", "always" or "off"'):
        scan(ScanOptions(path=tmp_path, sections={"models": {"modelscan": "sometimes"}}))


def test_clean_pickle_scan_never_imports_modelscan(tmp_path: Path) -> None:
    """A fully parsed clean pickle: no modelscan, h5py or NumPy import (start-up cost)."""
    (tmp_path / "one.pkl").write_bytes(pickle.dumps({"a": 1}))
    code = (
        "import sys; from pathlib import Path; from mlsec.scan import scan;"
        "from mlsec.config import ScanOptions;"
        f"r = scan(ScanOptions(path=Path({str(tmp_path)!r})));"
        "assert [f.rule_id for f in r.findings] == ['MLS102'], r.findings;"
        "print(sorted(m for m in ('modelscan', 'h5py', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip() == "[]"


def test_modelscan_reports_are_cached_per_file_and_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("modelscan", reason="modelscan 0.8 installs on Python 3.10-3.12 only")
    import json

    from mlsec import resultcache
    from mlsec.analyzers import modelscan_opinion

    monkeypatch.setattr(resultcache, "RACY_NS", 0)  # files written just now may be cached
    repo = tmp_path / "repo"
    repo.mkdir()
    _tree(repo)
    calls: list[str] = []

    def fake(name: str, args: dict[str, Any], *, timeout: float) -> Any:
        calls.append(Path(str(args["path"])).name)
        return {
            "issues": [
                {
                    "module": "webbrowser",
                    "operator": "open",
                    "severity": "HIGH",
                    "source": "cut.pkl",
                    "scanner": "modelscan.scanners.PickleUnsafeOpScan",
                }
            ],
            "errors": [],
        }

    monkeypatch.setattr(native, "call", fake)
    options = ScanOptions(path=repo, cache_dir=tmp_path / "cache", jobs=1)

    def seen() -> set[tuple[str, str]]:
        return {(f.rule_id, f.path) for f in scan(options).findings if f.source == "modelscan"}

    assert seen() == {("MLS191", "cut.pkl")} and calls == ["cut.pkl"]
    assert seen() == {("MLS191", "cut.pkl")} and calls == ["cut.pkl"]  # from the cache
    (cache_file,) = (tmp_path / "cache" / "results").glob("*.json")
    data = json.loads(cache_file.read_text())
    for entry in data["entries"].values():
        for name in [n for n in entry if n.startswith("modelscan ")]:
            entry[name] = {"issues": "none", "errors": []}  # not a report: asked again
    cache_file.write_text(json.dumps(data))
    assert seen() == {("MLS191", "cut.pkl")} and calls == ["cut.pkl"] * 2
    monkeypatch.setattr(modelscan_opinion, "_cache_label", lambda: "modelscan 9.9 numpy 3")
    assert seen() == {("MLS191", "cut.pkl")} and calls == ["cut.pkl"] * 3


def test_auto_asks_about_a_file_that_hit_a_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("modelscan", reason="modelscan 0.8 installs on Python 3.10-3.12 only")
    from mlsec.config import Limits

    (tmp_path / "big.pkl").write_bytes(pickle.dumps(list(range(2000))))
    (tmp_path / "small.pkl").write_bytes(pickle.dumps(1))
    calls: list[str] = []

    def fake(name: str, args: dict[str, Any], *, timeout: float) -> Any:
        calls.append(Path(str(args["path"])).name)
        return {"issues": [], "errors": []}

    monkeypatch.setattr(native, "call", fake)
    report = scan(ScanOptions(path=tmp_path, limits=Limits(max_pickle_ops=100), use_cache=False))
    assert ("MLS904", "big.pkl") in {(f.rule_id, f.path) for f in report.findings}
    assert calls == ["big.pkl"]
