"""Helpers for the mlsec.models tests: scan one file with the model analyzers only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

MODEL_ANALYZERS = (
    "mlsec.models.containers:PickleModelsAnalyzer",
    "mlsec.models.checks:ModelFormatsAnalyzer",
)


def hits(report: Any) -> set[tuple[str, str, str, str | None]]:
    return {(f.rule_id, f.severity.value, f.path, f.member) for f in report.findings}


@pytest.fixture
def scan_one(tmp_path: Path) -> Callable[..., Any]:
    """Write ``data`` as ``name`` in a fresh folder and scan it with the model analyzers."""
    from mlsec.config import build_options
    from mlsec.scan import scan

    def _scan(name: str, data: bytes, **flags: Any) -> Any:
        folder = tmp_path / "repo"
        folder.mkdir(exist_ok=True)
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        report = scan(build_options(folder, use_git=False, **flags), analyzers=MODEL_ANALYZERS)
        assert not report.errors, report.errors
        target.unlink()
        return report

    return _scan
