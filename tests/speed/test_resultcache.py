"""The result cache: an unchanged file is not parsed again, a changed one is, and a cache
file that is corrupt or hostile is never trusted blindly."""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path

import pytest

from mlsec import resultcache
from mlsec.config import ScanOptions
from mlsec.scan import scan


def _evil() -> bytes:
    return b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00echo\x85R."


def _repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    (repo / "a.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    (repo / "b.pkl").write_bytes(pickle.dumps({"w": [3.0]}))
    (repo / "evil.pkl").write_bytes(_evil())
    return repo


def _options(repo: Path, cache: Path) -> ScanOptions:
    return ScanOptions(path=repo, jobs=1, cache_dir=cache)


def _seen(report: object) -> set[tuple[str, str]]:
    return {(f.rule_id, f.path) for f in report.findings}  # type: ignore[attr-defined]


def test_second_scan_parses_nothing(tmp_path: Path, parsed: list[str]) -> None:
    repo, cache = _repo(tmp_path), tmp_path / "cache"
    first = scan(_options(repo, cache))
    assert sorted(parsed) == ["a.pkl", "b.pkl", "evil.pkl"]
    assert ("MLS101", "evil.pkl") in _seen(first)
    parsed.clear()
    written = _cache_file(cache).stat().st_mtime_ns
    second = scan(_options(repo, cache))
    assert parsed == []
    assert _cache_file(cache).stat().st_mtime_ns == written  # nothing new: not rewritten
    assert second.findings == first.findings
    assert second.facts == first.facts
    assert second.exit_code == first.exit_code == 1


def test_only_the_changed_file_is_analysed_again(tmp_path: Path, parsed: list[str]) -> None:
    repo, cache = _repo(tmp_path), tmp_path / "cache"
    scan(_options(repo, cache))
    parsed.clear()
    path = repo / "a.pkl"
    before = path.stat()
    time.sleep(0.05)  # past the file system's timestamp granularity
    # Same size, one byte different, mtime put back: the ctime still tells.
    path.write_bytes(pickle.dumps({"w": [1.0, 2.5]}))
    assert path.stat().st_size == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    scan(_options(repo, cache))
    assert parsed == ["a.pkl"]
    parsed.clear()
    (repo / "b.pkl").write_bytes(_evil())
    report = scan(_options(repo, cache))
    assert parsed == ["b.pkl"]
    assert ("MLS101", "b.pkl") in _seen(report)


def test_no_cache_reads_and_writes_nothing(tmp_path: Path, parsed: list[str]) -> None:
    repo, cache = _repo(tmp_path), tmp_path / "cache"
    options = _options(repo, cache)._replace(use_cache=False)
    scan(options)
    scan(options)
    assert len(parsed) == 6
    assert not cache.exists()


def test_files_changed_just_now_are_not_cached(
    tmp_path: Path, parsed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resultcache, "RACY_NS", 3600 * 10**9)
    repo, cache = _repo(tmp_path), tmp_path / "cache"
    scan(_options(repo, cache))
    scan(_options(repo, cache))
    assert len(parsed) == 6


def _cache_file(cache: Path) -> Path:
    (found,) = (cache / "results").glob("*.json")
    return found


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # cut short
        lambda text: "[1, 2, 3]",
        lambda text: '{"format": 1, "entries": []}',
        lambda text: "\x00\xff" * 100,
        lambda text: "[" * 100000,
    ],
)
def test_a_corrupt_cache_file_is_ignored(tmp_path: Path, parsed: list[str], damage: object) -> None:
    repo, cache = _repo(tmp_path), tmp_path / "cache"
    scan(_options(repo, cache))
    parsed.clear()
    target = _cache_file(cache)
    target.write_text(damage(target.read_text()))  # type: ignore[operator]
    report = scan(_options(repo, cache))
    assert sorted(parsed) == ["a.pkl", "b.pkl", "evil.pkl"]
    assert ("MLS101", "evil.pkl") in _seen(report)
    parsed.clear()
    scan(_options(repo, cache))  # rewritten whole: usable again
    assert parsed == []


def _rewrite(cache: Path, change: object) -> None:
    target = _cache_file(cache)
    data = json.loads(target.read_text())
    for key, entry in data["entries"].items():
        if key.startswith("evil.pkl\0"):
            change(entry["models"])  # type: ignore[operator]
    target.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e["f"][0].__setitem__(0, "MLS999X"),  # a rule that does not exist
        lambda e: e["f"][0].__setitem__(1, "none"),  # not a severity
        lambda e: e["f"][0].__setitem__(3, "a.pkl"),  # a finding on another file
        lambda e: e["f"][0].pop(),  # wrong shape
        lambda e: e.__setitem__("f", {"x": 1}),
        lambda e: e["f"][0].__setitem__(5, "12"),  # line not a number
        lambda e: e["x"].append(["other.pkl", "pickle", 1, None, None, {}, None]),
    ],
)
def test_a_hostile_entry_is_a_miss_not_a_verdict(
    tmp_path: Path, parsed: list[str], change: object
) -> None:
    repo, cache = _repo(tmp_path), tmp_path / "cache"
    scan(_options(repo, cache))
    parsed.clear()
    _rewrite(cache, change)
    report = scan(_options(repo, cache))
    assert parsed == ["evil.pkl"]
    assert ("MLS101", "evil.pkl") in _seen(report)


def test_a_different_configuration_does_not_share_results(
    tmp_path: Path, parsed: list[str]
) -> None:
    repo, cache = _repo(tmp_path), tmp_path / "cache"
    scan(_options(repo, cache))
    parsed.clear()
    options = _options(repo, cache)
    scan(options._replace(limits=options.limits._replace(max_pickle_ops=123456)))
    assert len(parsed) == 3
    parsed.clear()
    scan(options._replace(sections={"models": {"allow": ["mypkg.Layer"]}}))
    assert len(parsed) == 3


def test_concurrent_scans_share_the_cache_safely(tmp_path: Path, parsed: list[str]) -> None:
    import threading

    repo, cache = _repo(tmp_path), tmp_path / "cache"
    reports: list[object] = []
    threads = [
        threading.Thread(target=lambda: reports.append(scan(_options(repo, cache))))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reports) == 4 and all(("MLS101", "evil.pkl") in _seen(r) for r in reports)
    assert [p.name for p in (cache / "results").iterdir() if p.name.startswith(".")] == []
    parsed.clear()
    scan(_options(repo, cache))  # whichever scan wrote last, the file is whole and usable
    assert parsed == []
