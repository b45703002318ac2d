"""Per-scan set-up is paid only for work there is: the pickle allowlist is parsed when a file
is to be analysed, while a bad [models] section is an error on every scan."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from mlsec import resultcache
from mlsec.analyzers.pickle_policy import PicklePolicy


@pytest.fixture
def policy_loads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    loads: list[object] = []
    real = PicklePolicy.load.__func__  # type: ignore[attr-defined]

    def counted(cls: type[PicklePolicy], config: Any = None) -> PicklePolicy:
        loads.append(config)
        policy: PicklePolicy = real(cls, config)
        return policy

    monkeypatch.setattr(PicklePolicy, "load", classmethod(counted))
    return loads


def test_no_pickle_no_allowlist(tmp_path: Path, scan_dir: Any, policy_loads: list[object]) -> None:
    (tmp_path / "README.md").write_text("# nothing to unpickle\n")
    report = scan_dir(jobs=1, use_cache=False)
    assert report.exit_code == 0
    assert policy_loads == []


def test_a_pickle_gets_the_configured_allowlist_once(
    tmp_path: Path, scan_dir: Any, policy_loads: list[object]
) -> None:
    (tmp_path / "a.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    (tmp_path / ".mlsec.toml").write_text('[models]\nallow = ["collections.OrderedDict"]\n')
    report = scan_dir(jobs=1, use_cache=False)
    assert report.exit_code == 0
    assert len(policy_loads) == 1
    assert list(policy_loads[0].allow) == ["collections.OrderedDict"]  # type: ignore[attr-defined]


def test_unchanged_pickles_from_the_cache_need_no_allowlist(
    tmp_path: Path, scan_dir: Any, policy_loads: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.pkl").write_bytes(pickle.dumps({"w": [1.0]}, protocol=4))
    monkeypatch.setattr(resultcache, "RACY_NS", 0)  # the file was just written
    cache = tmp_path.parent / f"{tmp_path.name}-cache"
    first = scan_dir(jobs=1, cache_dir=cache)
    assert len(policy_loads) == 1
    again = scan_dir(jobs=1, cache_dir=cache)
    assert len(policy_loads) == 1
    assert again.findings == first.findings


def test_a_bad_models_section_fails_a_scan_with_no_model(tmp_path: Path, cli: Any) -> None:
    (tmp_path / "README.md").write_text("# no model here\n")
    (tmp_path / ".mlsec.toml").write_text("[models]\nalow = []\n")
    proc = cli("scan", tmp_path, "--format", "json")
    assert proc.returncode == 2, proc.stdout
    assert "unknown key" in proc.stderr
