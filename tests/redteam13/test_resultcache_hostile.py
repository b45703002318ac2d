"""The result cache read back as untrusted: what sits where the cache file should be, cache
folders that cannot be used, files written by someone else, concurrent scans, and changes a
cached identity must never hide."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mlsec import resultcache
from mlsec.config import ScanOptions
from mlsec.models.containers import PickleModelsAnalyzer
from mlsec.scan import scan
from tests.conftest import REPO, run_cli
from tests.redteam13.conftest import benign_pickle, evil_pickle

EVIL = ("MLS101", "evil.pkl")


def _repo(root: Path) -> Path:
    repo = root / "repo"
    benign_pickle(repo / "a.pkl")
    evil_pickle(repo / "evil.pkl")
    return repo


def _options(repo: Path, cache: Path) -> ScanOptions:
    return ScanOptions(path=repo, jobs=1, cache_dir=cache)


def _seen(report: Any) -> set[tuple[str, str]]:
    return {(f.rule_id, f.path) for f in report.findings}


def _cache_file(cache: Path) -> Path:
    (found,) = (cache / "results").glob("*.json")
    return found


def _emptied(cache: Path) -> None:
    """The attack: evil.pkl's entry edited to a clean outcome, its key left as it is."""
    target = _cache_file(cache)
    data = json.loads(target.read_text())
    for key, entry in data["entries"].items():
        if key.startswith("evil.pkl\0"):
            entry["models"] = {"f": [], "e": [], "x": []}
    target.write_text(json.dumps(data))
    target.chmod(0o600)


# -- what sits where the cache file should be ----------------------------------------------------
def _replace_cache_file(cache: Path, make: str) -> Path:
    target = _cache_file(cache)
    target.unlink()
    if make == "fifo":
        os.mkfifo(target)
    elif make == "dir":
        target.mkdir()
    elif make == "zero":
        target.symlink_to("/dev/zero")
    elif make == "dangling":
        target.symlink_to(cache / "nowhere")
    elif make == "loop":
        target.symlink_to(target)
    return target


def test_what_is_not_a_cache_file_is_ignored_without_blocking(tmp_path: Path) -> None:
    """In fresh processes with a deadline: a FIFO read with a blocking open would hang."""
    repo = _repo(tmp_path)
    time.sleep(resultcache.RACY_NS / 1e9 + 0.1)  # old enough to be cached
    for make in ("fifo", "dir", "zero", "dangling", "loop"):
        cache = tmp_path / f"cache-{make}"
        argv = ("scan", repo, "--no-git", "--cache-dir", cache, "-f", "json", "-j", "1")
        assert run_cli(*argv).returncode == 1
        _replace_cache_file(cache, make)
        try:
            proc = run_cli(*argv, timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the scan blocked on a {make} in place of the cache file")
        assert proc.returncode == 1, (make, proc.stderr)
        assert "internal error" not in proc.stderr
        found = {(f["rule_id"], f["path"]) for f in json.loads(proc.stdout)["findings"]}
        assert EVIL in found, make


@pytest.mark.parametrize("make", ["fifo", "dir", "zero"])
def test_a_cache_file_that_is_not_a_file_is_a_miss(
    tmp_path: Path, parsed: list[str], make: str
) -> None:
    repo, cache = _repo(tmp_path), tmp_path / "cache"
    scan(_options(repo, cache))
    parsed.clear()
    _replace_cache_file(cache, make)
    report = scan(_options(repo, cache))
    assert sorted(parsed) == ["a.pkl", "evil.pkl"]
    assert EVIL in _seen(report) and report.exit_code == 1


def test_a_huge_cache_file_is_not_read(
    tmp_path: Path, parsed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, cache = _repo(tmp_path), tmp_path / "cache"
    scan(_options(repo, cache))
    parsed.clear()
    size = _cache_file(cache).stat().st_size
    monkeypatch.setattr(resultcache, "MAX_CACHE_BYTES", size - 1)
    report = scan(_options(repo, cache))
    assert sorted(parsed) == ["a.pkl", "evil.pkl"]
    assert EVIL in _seen(report)


@pytest.mark.parametrize(
    "cache_dir",
    ["file", "/dev/null", "/proc/self", "fifo"],
)
def test_a_cache_folder_that_cannot_be_used_only_costs_time(
    tmp_path: Path, cache_dir: str, cli: Any
) -> None:
    """--cache-dir naming a file, a device, a folder nobody may write (root included) or a
    FIFO: the scan, the BOM and the signature check still give their full answer."""
    repo = _repo(tmp_path)
    if cache_dir == "file":
        where = tmp_path / "cache-file"
        where.write_text("not a folder")
    elif cache_dir == "fifo":
        where = tmp_path / "cache-fifo"
        os.mkfifo(where)
    else:
        where = Path(cache_dir)
    clean = cli("scan", repo, "--no-git", "--no-cache", "-f", "json", "-j", "1")
    for fmt in ("json", "cyclonedx"):
        proc = cli("scan", repo, "--no-git", "--cache-dir", where, "-f", fmt, "-j", "1")
        assert proc.returncode == 1, proc.stderr
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
        if fmt == "json":
            assert json.loads(proc.stdout)["findings"] == json.loads(clean.stdout)["findings"]
    if cache_dir == "file":
        assert where.read_text() == "not a folder"


# -- someone else's cache file -----------------------------------------------------------------
def test_a_cache_file_written_by_another_user_is_not_trusted(
    tmp_path: Path, parsed: list[str]
) -> None:
    """A cache folder shared on a machine (--cache-dir /tmp/mlsec): another user's file
    planted there (here: an emptied entry, chowned away) is not read."""
    repo, cache = _repo(tmp_path), tmp_path / "cache"
    scan(_options(repo, cache))
    _emptied(cache)
    target = _cache_file(cache)
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    os.chown(target, 12345, 12345)
    parsed.clear()
    report = scan(_options(repo, cache))
    assert "evil.pkl" in parsed and EVIL in _seen(report)


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666], ids=["g+w", "o+w", "a+w"])
def test_a_cache_file_others_may_write_is_not_trusted(
    tmp_path: Path, parsed: list[str], mode: int
) -> None:
    repo, cache = _repo(tmp_path), tmp_path / "cache"
    scan(_options(repo, cache))
    _emptied(cache)
    _cache_file(cache).chmod(mode)
    parsed.clear()
    report = scan(_options(repo, cache))
    assert "evil.pkl" in parsed and EVIL in _seen(report)


def test_the_cache_file_is_private(tmp_path: Path, parsed: list[str]) -> None:
    repo, cache = _repo(tmp_path), tmp_path / "cache"
    scan(_options(repo, cache))
    assert _cache_file(cache).stat().st_mode & 0o077 == 0
    assert (cache / "results").stat().st_mode & 0o077 == 0


def test_an_emptied_entry_of_ones_own_cache_is_trusted_by_design(
    tmp_path: Path, parsed: list[str]
) -> None:
    """The documented trust model (README, "Parallel, and cached"): whoever can write your
    cache folder decides the verdict of unchanged files. This pins that the identity is all
    that is checked, so that a change to it shows up here."""
    repo, cache = _repo(tmp_path), tmp_path / "cache"
    scan(_options(repo, cache))
    _emptied(cache)
    parsed.clear()
    report = scan(_options(repo, cache))
    assert parsed == [] and EVIL not in _seen(report)


# -- changes a cached identity must not hide -----------------------------------------------------
def test_content_changed_with_size_and_mtime_put_back_is_analysed(
    tmp_path: Path, parsed: list[str]
) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    benign = pickle.dumps({"w": "x" * 40}, protocol=2)
    (repo).mkdir()
    path = repo / "evil.pkl"
    path.write_bytes(benign)
    scan(_options(repo, cache))
    _emptied(cache)  # even with the entry planted clean
    before = path.stat()
    evil = evil_pickle(tmp_path / "e.pkl").read_bytes()
    evil = evil + b"." * (len(benign) - len(evil))  # same size (STOP ends the pickle)
    assert len(evil) == len(benign)
    time.sleep(0.01)
    with open(path, "r+b") as handle:  # same inode
        handle.write(evil)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    parsed.clear()
    report = scan(_options(repo, cache))
    assert parsed == ["evil.pkl"] and EVIL in _seen(report)


def test_a_file_renamed_over_a_cached_one_is_analysed(tmp_path: Path, parsed: list[str]) -> None:
    """Same size, same mtime, the inode number of the cached file reused if the file system
    likes: the ctime of the rename still differs."""
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    benign = pickle.dumps({"w": "x" * 40}, protocol=2)
    repo.mkdir()
    path = repo / "evil.pkl"
    path.write_bytes(benign)
    scan(_options(repo, cache))
    before = path.stat()
    evil = evil_pickle(tmp_path / "e.pkl").read_bytes()
    staged = tmp_path / "staged.pkl"
    staged.write_bytes(evil + b"." * (len(benign) - len(evil)))
    os.utime(staged, ns=(before.st_atime_ns, before.st_mtime_ns))
    path.unlink()
    os.rename(staged, path)
    parsed.clear()
    report = scan(_options(repo, cache))
    assert parsed == ["evil.pkl"] and EVIL in _seen(report)


def test_a_link_swapped_during_the_analysis_is_not_cached_as_its_target(
    tmp_path: Path, parsed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Hugging Face cache: the snapshot's model.pkl links to an unsafe blob (scanned under
    the link's name). While it is analysed the link points at a benign blob, then back:
    the benign verdict must not be kept for the unsafe blob's (unchanged) identity."""
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    hub = repo / "models--org--name"
    evil_pickle(hub / "blobs" / "aaa")
    benign_pickle(hub / "blobs" / "bbb")
    link = hub / "snapshots" / "rev" / "model.pkl"
    link.parent.mkdir(parents=True)
    link.symlink_to("../../blobs/aaa")
    name = "models--org--name/snapshots/rev/model.pkl"
    real = PickleModelsAnalyzer.analyze_file

    def swapping(self, target, ctx):  # type: ignore[no-untyped-def]
        if target.relpath != name:
            return real(self, target, ctx)
        for to in ("../../blobs/bbb", "../../blobs/aaa"):
            staged = link.with_name("staged")
            staged.symlink_to(to)
            os.replace(staged, link)
            if to.endswith("bbb"):
                outcome = real(self, target, ctx)
        return outcome

    options = _options(repo, cache)._replace(sections={"models": {"modelscan": "off"}})
    with monkeypatch.context() as patch:
        patch.setattr(PickleModelsAnalyzer, "analyze_file", swapping)
        first = scan(options)
    assert ("MLS101", name) not in _seen(first)  # the benign blob was read
    parsed.clear()
    report = scan(options)
    assert name in parsed
    assert ("MLS101", name) in _seen(report)


# -- concurrent scans ------------------------------------------------------------------------------
def test_concurrent_scans_in_separate_processes_share_one_cache(tmp_path: Path) -> None:
    """Four processes at once on one cache (200 files: the worker pool too), twice, with a
    file made malicious between the rounds: every report is right, the cache stays whole."""
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    for i in range(200):
        benign_pickle(repo / f"d{i % 10}" / f"m{i}.pkl")
    evil_pickle(repo / "evil.pkl")
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    argv = [sys.executable, "-m", "mlsec", "scan", str(repo), "--no-git", "-f", "json",
            "--cache-dir", str(cache), "--min-severity", "high"]  # fmt: skip

    def round_of(n: int) -> list[set[tuple[str, str]]]:
        procs = [
            subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(n)
        ]
        out = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 1, stderr.decode()
            out.append({(f["rule_id"], f["path"]) for f in json.loads(stdout)["findings"]})
        return out

    time.sleep(resultcache.RACY_NS / 1e9 + 0.1)  # old enough to be cached
    first = round_of(4)
    assert all(found == {EVIL} for found in first), first
    time.sleep(0.05)
    evil_pickle(repo / "d3" / "m3.pkl")
    second = round_of(4)
    assert all(found == {EVIL, ("MLS101", "d3/m3.pkl")} for found in second), second
    results = cache / "results"
    assert [p.name for p in results.iterdir() if p.name.startswith(".")] == []
    for file in results.glob("*.json"):
        data = json.loads(file.read_text())
        assert data["format"] == resultcache.FORMAT and isinstance(data["entries"], dict)


# -- growth ----------------------------------------------------------------------------------------
def test_the_cache_folder_does_not_grow_with_every_root_scanned(
    tmp_path: Path, parsed: list[str]
) -> None:
    """One cache file per scan identity (root, configuration, shard, version): scans of
    temporary checkouts must not fill the disk; a killed scan's temporary file goes too."""
    cache = tmp_path / "cache"
    results = cache / "results"
    results.mkdir(parents=True)
    old = time.time_ns() - 7200 * 10**9
    for i in range(resultcache.MAX_FILES + 10):
        planted = results / f"{i:032x}.json"
        planted.write_text('{"format": 1, "entries": {}}')
        os.utime(planted, ns=(old + i, old + i))
    leftover = results / ".results-killed.tmp"
    leftover.write_text("{")
    os.utime(leftover, ns=(old, old))
    fresh = results / ".results-writing.tmp"  # a concurrent scan's, being written
    fresh.write_text("{")
    repo = _repo(tmp_path)
    report = scan(_options(repo, cache))
    assert EVIL in _seen(report)
    files = sorted(p.name for p in results.glob("*.json"))
    assert len(files) == resultcache.MAX_FILES
    assert _cache_file_of(results, repo, cache) in files  # this scan's, kept
    assert f"{0:032x}.json" not in files and f"{73:032x}.json" in files  # the oldest went
    assert not leftover.exists() and fresh.exists()
    parsed.clear()
    scan(_options(repo, cache))
    assert parsed == []  # and it is used


def _cache_file_of(results: Path, repo: Path, cache: Path) -> str:
    from mlsec.rules import load_rules

    options = _options(repo, cache)
    return f"{resultcache.scan_digest(options, load_rules())}.json"


def test_an_entry_marked_not_cacheable_is_a_miss(tmp_path: Path, parsed: list[str]) -> None:
    """An outcome that depends on more than its file is never stored; an entry saying it is
    one was not written by mlsec and is not used."""
    repo, cache = _repo(tmp_path), tmp_path / "cache"
    scan(_options(repo, cache))
    target = _cache_file(cache)
    data = json.loads(target.read_text())
    for key, entry in data["entries"].items():
        if key.startswith("evil.pkl\0"):
            entry["models"] = {"f": [], "e": [], "x": [], "c": False}
    target.write_text(json.dumps(data))
    parsed.clear()
    report = scan(_options(repo, cache))
    assert parsed == ["evil.pkl"] and EVIL in _seen(report)


def test_an_outcome_not_cacheable_is_not_stored_whoever_puts_it(tmp_path: Path) -> None:
    from mlsec.analyzers import FileOutcome
    from mlsec.rules import load_rules
    from mlsec.walk import FileKind, Target

    path = benign_pickle(tmp_path / "a.pkl")
    cache = resultcache.ResultCache(tmp_path / "c" / "r.json", load_rules())
    cache.started_ns += 10**12  # the file is not "changed just now"
    target = Target(str(path), "a.pkl", path.stat().st_size, FileKind.PICKLE)
    cache.put("models", target, FileOutcome(cacheable=False))
    assert cache.stored == 0
