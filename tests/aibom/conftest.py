"""AIBOM tests: every test gets its own hash cache (XDG_CACHE_HOME) and no SOURCE_DATE_EPOCH."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.aibom.helpers import fixture_copy  # noqa: F401 - a fixture used by the tests


@pytest.fixture(autouse=True)
def isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    yield cache
