"""Helpers for the model-format tests: run only the formats analyzer on a folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def scan_formats() -> Callable[..., Any]:
    from mlsec.config import build_options
    from mlsec.scan import scan

    def _scan(path: Path, analyzers: tuple[str, ...] | None = None, **flags: Any) -> Any:
        names = analyzers or ("mlsec.models.checks:ModelFormatsAnalyzer",)
        # Paths relative to the scanned folder (not to the repository fixtures live in).
        root = path if path.is_dir() else path.parent
        return scan(build_options(path, repo_root=root, **flags), analyzers=names)

    return _scan


def only(report: Any, rule_id: str) -> list[Any]:
    return [f for f in report.findings if f.rule_id == rule_id]
