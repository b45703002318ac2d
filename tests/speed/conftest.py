"""Fixtures of the speed tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _cpus_enough_for_the_jobs_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests ask for 2 or 3 workers and count them; --jobs is capped at the CPUs the
    process may use, which a CI runner may have fewer of."""
    from mlsec import pool

    monkeypatch.setattr(pool, "machine_jobs", lambda: 4)
