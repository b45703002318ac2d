"""Per-file analysis in worker processes: same report as in-process, crashes contained,
Ctrl-C leaves no worker behind."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from mlsec import pool
from mlsec.analyzers import AnalysisContext, FileAnalyzer
from mlsec.config import ScanOptions
from mlsec.findings import Finding
from mlsec.models.sniff import FileKind
from mlsec.rules import load_rules
from mlsec.scan import scan
from mlsec.walk import Target
from tests.conftest import assert_reaped

REPO = Path(__file__).resolve().parents[2]


def walk_targets(root: Path) -> list[Target]:
    from mlsec.walk import walk

    return walk(ScanOptions(path=root, use_git=False), load_rules()).targets


def _evil(module: str, name: str) -> bytes:
    body = f"c{module}\n{name}\n".encode() + b"X\x04\x00\x00\x00echo"
    return b"\x80\x02" + body + b"\x85R."


def _repo(root: Path, count: int = 40) -> None:
    for i in range(count):
        (root / f"m{i:03}.pkl").write_bytes(pickle.dumps({"layer": i, "w": [0.5] * (i % 7)}))
    (root / "evil.pkl").write_bytes(_evil("os", "system"))
    (root / "cut.pkl").write_bytes(pickle.dumps(list(range(30)))[:-5])
    (root / "w.safetensors").write_bytes(
        (b'{"__metadata__":{"a":"b"}}').__len__().to_bytes(8, "little")
        + b'{"__metadata__":{"a":"b"}}'
    )


def test_same_report_whatever_the_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _repo(tmp_path)
    monkeypatch.setattr(pool, "MIN_FILES", 2)
    used: list[int] = []
    real = pool._in_pool

    def spy(analyzer, targets, sizes, ctx, jobs):  # type: ignore[no-untyped-def]
        used.append(jobs)
        return real(analyzer, targets, sizes, ctx, jobs)

    monkeypatch.setattr(pool, "_in_pool", spy)
    options = ScanOptions(path=tmp_path, use_cache=False, reproducible=True)
    one = scan(options._replace(jobs=1))
    assert used == []
    for jobs in (2, 3):
        many = scan(options._replace(jobs=jobs))
        assert many.findings == one.findings
        assert many.errors == one.errors
        assert many.facts == one.facts
    assert used and set(used) == {2, 3}
    found = {(f.rule_id, f.path) for f in one.findings}
    assert ("MLS101", "evil.pkl") in found and ("MLS100", "cut.pkl") in found


def test_small_work_stays_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _repo(tmp_path, count=3)

    def refuse(*args: object) -> object:
        raise AssertionError("a pool for five files")

    monkeypatch.setattr(pool, "_in_pool", refuse)
    report = scan(ScanOptions(path=tmp_path, use_cache=False, jobs=4))
    assert ("MLS101", "evil.pkl") in {(f.rule_id, f.path) for f in report.findings}


def test_big_files_whose_check_reads_a_header_stay_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight 16 MiB safetensors files are 128 MiB (over MIN_BYTES), but their check reads
    eight headers: no workers. Eight pickles of that size would get them."""
    header = b'{"w":{"dtype":"U8","shape":[16777216],"data_offsets":[0,16777216]}}'
    for i in range(8):
        with open(tmp_path / f"m{i}.safetensors", "wb") as out:
            out.write(len(header).to_bytes(8, "little") + header)
            out.truncate(8 + len(header) + 16 * 1024**2)  # sparse: no disk used

    def refuse(*args: object) -> object:
        raise AssertionError("a pool for eight headers")

    monkeypatch.setattr(pool, "_in_pool", refuse)
    report = scan(ScanOptions(path=tmp_path, use_cache=False, jobs=2))
    assert report.files_scanned == 8 and not report.errors
    from mlsec.models.checks import ModelFormatsAnalyzer

    targets = [t for t in walk_targets(tmp_path) if t.kind is FileKind.SAFETENSORS]
    sizes = [ModelFormatsAnalyzer().work_size(t) for t in targets]
    assert len(sizes) == 8 and not pool.worth_a_pool(sizes, 2)
    assert pool.worth_a_pool([t.size for t in targets], 2)  # by bytes it would have been


class _Dies(FileAnalyzer):
    """Kills its own process on one file (a crash in C, as far as the pool can tell)."""

    name = "dies"
    per_file_outcomes = True

    def accepts(self, target: Target) -> bool:
        return True

    def analyze_file(self, target: Target, ctx: AnalysisContext) -> Iterable[Finding]:
        if target.relpath == "bad.bin":
            os.kill(os.getpid(), signal.SIGKILL)
        return [ctx.finding("MLS102", target.relpath, "seen", key=target.relpath)]


def _targets(root: Path, names: list[str]) -> list[Target]:
    out = []
    for name in names:
        (root / name).write_bytes(b"x")
        out.append(Target(root / name, name, 1, FileKind.BINARY))
    return out


class _KeepsFactsInSelf(FileAnalyzer):
    """The old way: facts gathered in self across files (not per_file_outcomes)."""

    name = "old-style"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def accepts(self, target: Target) -> bool:
        return True

    def analyze_file(self, target: Target, ctx: AnalysisContext) -> Iterable[Finding]:
        self.seen.append(target.relpath)
        return []


def test_analyzers_that_keep_state_stay_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "MIN_FILES", 2)
    targets = _targets(tmp_path, [f"f{i}.bin" for i in range(10)])
    ctx = AnalysisContext(
        options=ScanOptions(path=tmp_path, jobs=2, use_cache=False), rules=load_rules()
    )
    analyzer = _KeepsFactsInSelf()
    analyzer.analyze(targets, ctx)
    assert analyzer.seen == [t.relpath for t in targets]


def test_worker_crash_is_an_internal_error_for_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "MIN_FILES", 2)
    names = [f"f{i:02}.bin" for i in range(20)]
    names.insert(7, "bad.bin")
    targets = _targets(tmp_path, names)
    ctx = AnalysisContext(
        options=ScanOptions(path=tmp_path, jobs=2, use_cache=False), rules=load_rules()
    )
    result = _Dies().analyze(targets, ctx)
    assert sorted(f.path for f in result.findings) == sorted(n for n in names if n != "bad.bin")
    assert [(e.path, e.internal, e.analyzer) for e in result.errors] == [("bad.bin", True, "dies")]
    assert "signal 9" in result.errors[0].message


_SLOW = """
import os, sys, time
from pathlib import Path
from mlsec import pool
from mlsec.analyzers import FileAnalyzer
from mlsec.analyzers import AnalysisContext
from mlsec.config import ScanOptions
from mlsec.rules import load_rules
from mlsec.models.sniff import FileKind
from mlsec.walk import Target

pool.MIN_FILES = 2
PIDS = Path(sys.argv[1])

class Slow(FileAnalyzer):
    name = "slow"
    per_file_outcomes = True
    def accepts(self, target):
        return True
    def analyze_file(self, target, ctx):
        with open(PIDS, "a") as out:
            out.write(f"{os.getpid()}\\n")
        time.sleep(60)
        return []

root = PIDS.parent
targets = [Target(root / f"{i}", f"{i}", 1, FileKind.BINARY) for i in range(8)]
ctx = AnalysisContext(options=ScanOptions(path=root, jobs=2, use_cache=False), rules=load_rules())
try:
    Slow().analyze(targets, ctx)
except KeyboardInterrupt:
    sys.exit(130)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_ctrl_c_exits_130_and_no_worker_outlives_the_scan(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW, str(pids)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not pids.exists() or len(pids.read_text().split()) < 2):
        time.sleep(0.05)
    workers = [int(p) for p in pids.read_text().split()]
    assert len(workers) == 2 and proc.pid not in workers
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    time.sleep(0.2)
    assert [pid for pid in workers if _alive(pid)] == []


def test_cli_jobs_and_cache_flags_give_the_same_report(tmp_path: Path) -> None:
    import json

    from tests.conftest import run_cli

    repo = tmp_path / "repo"
    repo.mkdir()
    _repo(repo, count=pool.MIN_FILES + 10)  # enough for a pool
    reports = []
    cache = ["--cache-dir", str(tmp_path / "cache")]
    for flags in (["--jobs", "1", "--no-cache"], ["--jobs", "2", "--no-cache"], ["-j2", *cache]):
        proc = run_cli("scan", repo, "-f", "json", *flags)
        assert proc.returncode == 1, proc.stderr
        data = json.loads(proc.stdout)
        reports.append((data["findings"], data.get("errors")))
    assert reports[0] == reports[1] == reports[2]
    assert {(f["rule_id"], f["path"]) for f in reports[0][0]} >= {
        ("MLS101", "evil.pkl"),
        ("MLS100", "cut.pkl"),
    }


def test_progress_counts_every_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _repo(tmp_path, count=30)
    monkeypatch.setattr(pool, "MIN_FILES", 2)
    bars: dict[str, list[int]] = {}

    def progress(description: str, total: int):  # type: ignore[no-untyped-def]
        steps = bars.setdefault(description, [total, 0])
        return lambda n: steps.__setitem__(1, steps[1] + n)

    scan(ScanOptions(path=tmp_path, jobs=2, use_cache=False), progress=progress)
    assert bars and all(total == done == 33 for total, done in bars.values())


def test_no_process_can_be_started_the_files_are_analyzed_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process limit (a container's pids.max) makes fork fail: the scan does the work in
    its own process, with the same report, instead of failing the analyzer."""
    _repo(tmp_path)
    monkeypatch.setattr(pool, "MIN_FILES", 2)
    options = ScanOptions(path=tmp_path, use_cache=False, reproducible=True)
    one = scan(options._replace(jobs=1))

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    returned: list[object] = []
    real = pool._in_pool

    def spy(analyzer, targets, sizes, ctx, jobs):  # type: ignore[no-untyped-def]
        returned.append(real(analyzer, targets, sizes, ctx, jobs))
        return returned[-1]

    monkeypatch.setattr(pool, "_in_pool", spy)
    limited = scan(options._replace(jobs=2))
    assert returned and all(r is None for r in returned)  # the pool could not start
    assert limited.exit_code == one.exit_code
    assert [(f.rule_id, f.path) for f in limited.findings] == [
        (f.rule_id, f.path) for f in one.findings
    ]
    assert not limited.errors


def test_isolating_a_file_without_a_process_is_an_internal_error_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a worker died, each file not done gets a process of its own; when none can be
    started, the file is not analysed in the scan's process (it may be what kills a process)
    and gets an internal error."""
    [target] = _targets(tmp_path, ["bad.bin"])
    ctx = AnalysisContext(
        options=ScanOptions(path=tmp_path, jobs=2, use_cache=False), rules=load_rules()
    )

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    outcome = pool._isolated(_Dies(), target, ctx)
    assert outcome.findings == ()
    assert [(e.path, e.internal, e.analyzer) for e in outcome.errors] == [("bad.bin", True, "dies")]
    assert "no process could be started" in outcome.errors[0].message


class _UserError(_Dies):
    name = "user-error"

    def analyze_file(self, target: Target, ctx: AnalysisContext) -> Iterable[Finding]:
        if target.relpath == "bad.bin":
            from mlsec.errors import ConfigError

            raise ConfigError("models.allow: not a list", hint="write allow = [...]")
        return [ctx.finding("MLS102", target.relpath, "seen", key=target.relpath)]


def test_a_user_error_in_a_worker_ends_the_scan_with_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forked: list[int]
) -> None:
    """An MlsecError (the user's to fix) met in a worker stops the scan as it would in the
    scan's own process: the same message and hint, no internal error, no worker left."""
    from mlsec.errors import ConfigError

    monkeypatch.setattr(pool, "MIN_FILES", 2)
    names = [f"f{i:02}.bin" for i in range(20)]
    names.insert(11, "bad.bin")
    targets = _targets(tmp_path, names)
    ctx = AnalysisContext(
        options=ScanOptions(path=tmp_path, jobs=2, use_cache=False), rules=load_rules()
    )
    with pytest.raises(ConfigError) as caught:
        _UserError().analyze(targets, ctx)
    assert caught.value.message == "models.allow: not a list"
    assert caught.value.hint == "write allow = [...]"
    assert len(forked) == 2
    assert_reaped(forked)
