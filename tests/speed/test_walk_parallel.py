"""The walk reads and sniffs files in worker processes when there are many: the same walk
whatever the number of workers, every odd path still reported, and a worker that dies costs
nothing but time."""

from __future__ import annotations

import os
import pickle
import signal
from pathlib import Path

import pytest

from mlsec import forks, walk
from mlsec.config import ScanOptions
from mlsec.models.sniff import FileKind
from mlsec.rules import load_rules
from tests.conftest import assert_reaped

LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 1234\n"


def _tree(root: Path) -> None:
    for i in range(30):
        (root / f"src{i:02}.py").write_text(f"value = {i}\n")
    (root / "weights.txt").write_bytes(pickle.dumps({"w": 1}, protocol=4))  # a pickle by content
    (root / "empty.bin").write_bytes(b"")
    (root / "big.lfs.bin").write_bytes(LFS)
    (root / "sub").mkdir()
    (root / "sub" / "model.pkl").write_bytes(pickle.dumps([1, 2], protocol=2))
    (root / "link.pkl").symlink_to(root / "sub" / "model.pkl")
    (root / "escape.pkl").symlink_to("/etc/hostname")
    (root / "broken.txt").symlink_to(root / "missing")
    os.mkfifo(root / "pipe.pkl")


def _walk(root: Path, jobs: int) -> walk.WalkResult:
    return walk.walk(ScanOptions(path=root, use_git=False, jobs=jobs), load_rules())


def _summary(result: walk.WalkResult) -> tuple[object, ...]:
    return (
        [(t.relpath, t.size, t.kind, t.tail, Path(t.file)) for t in result.targets],
        sorted((f.rule_id, f.path) for f in result.findings),
        sorted(result.skipped),
        sorted(result.errors),
    )


@pytest.fixture
def parallel(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every walk probes in workers; records how many."""
    monkeypatch.setattr(walk, "PARALLEL_PROBE_FILES", 2)
    used: list[int] = []
    real = forks.fork_map

    def spy(func, items, jobs):  # type: ignore[no-untyped-def]
        used.append(jobs)
        return real(func, items, jobs)

    monkeypatch.setattr(forks, "fork_map", spy)
    return used


def test_same_walk_whatever_the_workers(tmp_path: Path, parallel: list[int]) -> None:
    _tree(tmp_path)
    one = _walk(tmp_path, 1)
    assert parallel == []
    for jobs in (2, 3):
        assert _summary(_walk(tmp_path, jobs)) == _summary(one)
    assert parallel == [2, 3]
    kinds = {t.relpath: t.kind for t in one.targets}
    assert kinds["weights.txt"] is FileKind.PICKLE
    assert kinds["empty.bin"] is FileKind.EMPTY
    assert kinds["big.lfs.bin"] is FileKind.LFS_POINTER
    assert "link.pkl" not in kinds  # scanned once, at its own path
    assert ("link.pkl", "symlink to sub/model.pkl (scanned at its own path)") in one.skipped
    found = {(f.rule_id, f.path) for f in one.findings}
    assert ("MLS903", "big.lfs.bin") in found  # the pointer read in a worker is still reported
    assert ("MLS905", "escape.pkl") in found
    assert ("MLS902", "broken.txt") in found
    assert ("MLS906", "pipe.pkl") in found


def test_a_file_that_cannot_be_read_in_a_worker_is_still_reported(
    tmp_path: Path, parallel: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(tmp_path)
    locked = tmp_path / "src07.py"
    real = walk.read_and_sniff

    def refusing(path):  # type: ignore[no-untyped-def]
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(walk, "read_and_sniff", refusing)
    result = _walk(tmp_path, 2)
    assert parallel == [2]
    assert "src07.py" not in {t.relpath for t in result.targets}
    assert [(e.path, e.message) for e in result.errors] == [
        ("src07.py", "cannot read: Permission denied")
    ]
    assert ("MLS901", "src07.py") in {(f.rule_id, f.path) for f in result.findings}


def test_fork_map_is_map_in_order() -> None:
    items = list(range(1000))
    for jobs in (1, 2, 5):
        assert forks.fork_map(lambda x: (x, str(x), bytes([x % 256])), items, jobs) == [
            (x, str(x), bytes([x % 256])) for x in items
        ]


def test_fork_map_redoes_the_slice_of_a_worker_that_dies() -> None:
    parent = os.getpid()

    def fragile(x: int) -> int:
        if x == 900 and os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)  # a worker killed mid-slice
        return x * 2

    assert forks.fork_map(fragile, list(range(1000)), 2) == [x * 2 for x in range(1000)]


def test_fork_map_leaves_no_worker_behind_when_the_parent_fails(forked: list[int]) -> None:
    parent = os.getpid()

    def failing_here(x: int) -> int:
        if os.getpid() == parent and x == 10:
            raise KeyboardInterrupt
        return x

    with pytest.raises(KeyboardInterrupt):
        forks.fork_map(failing_here, list(range(1000)), 3)
    assert len(forked) == 2
    assert_reaped(forked)


def _git_repo(root: Path) -> None:
    import subprocess

    (root / "src").mkdir()
    (root / "src" / "train.py").write_text("print(1)\n")
    (root / "model.pkl").write_bytes(pickle.dumps({"w": 1}, protocol=4))
    (root / "node_modules").mkdir()
    (root / "node_modules" / "x.js").write_text("x\n")
    (root / ".gitignore").write_text("checkpoints/\n*.log\n")
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "PATH": os.environ["PATH"],
        "HOME": str(root),
    }
    subprocess.run(["git", "init", "-q", str(root)], check=True, env=env)
    subprocess.run(["git", "-C", str(root), "add", "-A", "-f"], check=True, env=env)
    subprocess.run(["git", "-C", str(root), "commit", "-qm", "x"], check=True, env=env)
    (root / "untracked.bin").write_bytes(pickle.dumps([1], protocol=2))
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "last.ckpt").write_bytes(pickle.dumps({"e": 2}, protocol=4))
    (root / "run.log").write_text("log\n")


def test_git_walk_reads_tracked_files_while_git_lists_the_others(tmp_path: Path) -> None:
    _git_repo(tmp_path)
    result = walk.walk(ScanOptions(path=tmp_path, jobs=1), load_rules())
    assert result.git
    assert [t.relpath for t in result.targets] == [
        ".gitignore",
        "checkpoints/last.ckpt",
        "model.pkl",
        "run.log",
        "src/train.py",
        "untracked.bin",
    ]
    assert ("node_modules/", "excluded folder (default)") in result.skipped


def test_git_listing_that_fails_half_way_falls_back_to_the_file_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _git_repo(tmp_path)
    whole = walk.walk(ScanOptions(path=tmp_path, jobs=1), load_rules())
    monkeypatch.setattr(walk._GitListing, "others", lambda self: None)
    halfway = walk.walk(ScanOptions(path=tmp_path, jobs=1), load_rules())
    assert [t.relpath for t in halfway.targets] == [t.relpath for t in whole.targets]
    assert halfway.git


def test_fork_map_does_the_work_itself_when_no_process_can_be_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = 0
    real_fork = os.fork

    def second_fork_fails() -> int:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise BlockingIOError(11, "Resource temporarily unavailable")  # a pids limit
        return real_fork()

    monkeypatch.setattr(os, "fork", second_fork_fails)
    assert forks.fork_map(lambda x: x + 1, list(range(999)), 3) == [x + 1 for x in range(999)]
    assert calls == 2
