"""Fixtures of the speed tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _cpus_enough_for_the_jobs_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests ask for 2 or 3 workers and count them; --jobs is capped at the CPUs the
    process may use, which a CI runner may have fewer of."""
    from mlsec import pool

    monkeypatch.setattr(pool, "machine_jobs", lambda: 4)


@pytest.fixture
def forked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids of the processes this test forks (to check that each is reaped)."""
    pids: list[int] = []
    real_fork = os.fork

    def recording_fork() -> int:
        pid = real_fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recording_fork)
    return pids


def assert_reaped(pids: list[int]) -> None:
    for pid in pids:  # killed and reaped: not even a zombie is left
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
