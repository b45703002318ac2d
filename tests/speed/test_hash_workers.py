"""Hashing in forked workers (mlsec.hashing.PendingHashes over mlsec.forks.ForkedSlices): the
digests are those of the bytes whatever happens to the workers, and no worker outlives the
caller."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import pytest

from mlsec import forks, hashing
from tests.conftest import assert_reaped


def _files(folder: Path, sizes: list[int]) -> list[Path]:
    out = []
    for i, size in enumerate(sizes):
        path = folder / f"w{i}.bin"
        path.write_bytes(bytes([i % 251]) * size)
        out.append(path)
    return out


def _truth(files: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture
def small_batches_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "FORK_BYTES", 1)
    hashing._MEMO.clear()


def test_a_big_batch_is_hashed_in_one_worker_per_core(
    tmp_path: Path, forked: list[int], small_batches_fork: None
) -> None:
    # Chunk edges and a last partial read, different bytes in each file.
    files = _files(tmp_path, [hashing.CHUNK * 2 + hashing.CHUNK // 2 + i for i in range(5)])
    pending = hashing.PendingHashes(files, workers=2)
    assert pending.running
    assert pending.result() == _truth(files)
    assert len(forked) == 2
    assert_reaped(forked)


def test_a_small_batch_is_hashed_here(tmp_path: Path, forked: list[int]) -> None:
    hashing._MEMO.clear()
    files = _files(tmp_path, [10, 3000, 0])
    pending = hashing.PendingHashes(files, workers=2)
    assert not pending.running
    assert pending.result() == _truth(files)
    assert forked == []


def test_shares_are_balanced_by_size() -> None:
    sizes = [10, 3000, 200, 21000, 3000]
    assert forks.balanced(sizes, 2) == [[3], [0, 1, 2, 4]]
    assert forks.balanced(sizes, 9) == [[3], [1], [4], [2], [0]]  # never an empty share
    assert forks.balanced([], 3) == []


def test_worker_digests_are_memoised_for_the_next_caller(
    tmp_path: Path, forked: list[int], small_batches_fork: None
) -> None:
    files = _files(tmp_path, [5000, 6000])
    first = hashing.hash_files(files, workers=2)
    assert len(forked) == 2
    second = hashing.PendingHashes(files, workers=2)  # the signatures' after the BOM's
    assert not second.running
    assert second.result() == first == _truth(files)
    assert len(forked) == 2


def test_a_worker_that_dies_has_its_files_hashed_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_batches_fork: None
) -> None:
    files = _files(tmp_path, [7000, 5000, 3000, 1000])
    parent = os.getpid()
    real = hashing._digest_and_key

    def fragile(path: str) -> tuple[str, str] | None:
        if path.endswith("w2.bin") and os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path)

    monkeypatch.setattr(hashing, "_digest_and_key", fragile)
    assert hashing.hash_files(files, workers=2) == _truth(files)


def test_no_process_to_be_had_hashes_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_batches_fork: None
) -> None:
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")  # a pids limit

    monkeypatch.setattr(os, "fork", no_fork)
    files = _files(tmp_path, [7000, 5000, 3000])
    assert hashing.hash_files(files, workers=2) == _truth(files)


def test_a_file_swapped_for_a_fifo_is_left_out_by_a_worker(
    tmp_path: Path, small_batches_fork: None
) -> None:
    files = _files(tmp_path, [7000, 5000])
    fifo = tmp_path / "w9.bin"
    os.mkfifo(fifo)
    assert hashing.hash_files([*files, fifo], workers=2) == _truth(files)


def test_leaving_on_ctrl_c_kills_the_workers_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forked: list[int], small_batches_fork: None
) -> None:
    files = _files(tmp_path, [1000] * 8)
    real = hashing._digest_and_key

    def slow(path: str) -> tuple[str, str] | None:
        time.sleep(1)  # 8 files on 2 workers: 4 s to the end
        return real(path)

    monkeypatch.setattr(hashing, "_digest_and_key", slow)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt), hashing.PendingHashes(files, workers=2):
        raise KeyboardInterrupt
    assert time.monotonic() - start < 1
    assert len(forked) == 2
    assert_reaped(forked)


def test_ctrl_c_between_two_forks_leaves_no_worker(
    monkeypatch: pytest.MonkeyPatch, forked: list[int]
) -> None:
    real = forks.fork_worker
    started = 0

    def interrupted(*args: object) -> forks.Running | None:
        nonlocal started
        started += 1
        if started == 2:
            raise KeyboardInterrupt
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(forks, "fork_worker", interrupted)
    with pytest.raises(KeyboardInterrupt):
        forks.ForkedSlices(lambda x: x, [[1], [2], [3]])
    assert len(forked) == 1
    assert_reaped(forked)
