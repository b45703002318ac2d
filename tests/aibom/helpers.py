"""AIBOM test helpers: an isolated hash cache, BOM building through the library API."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

AIBOM_FIXTURES = FIXTURES / "aibom"
REAL = AIBOM_FIXTURES / "real"


@pytest.fixture
def fixture_copy(tmp_path: Path) -> Path:
    """A copy of fixtures/aibom (its real/ folder left out) outside any git work tree."""
    target = tmp_path / "repo"
    shutil.copytree(AIBOM_FIXTURES, target, ignore=shutil.ignore_patterns("real"))
    return target


def scan_report(path: Path, *, extra_facts: dict[str, Any] | None = None, **flags: Any) -> Any:
    from mlsec.config import build_options
    from mlsec.scan import scan

    flags.setdefault("use_git", False)
    flags.setdefault("build_bom", True)  # as `--format cyclonedx` and `mlsec bom` ask
    # Documentation-gap findings (MLS301-MLS308) are opt-in; these tests look at them.
    flags.setdefault("select", ("MLS3",))
    report = scan(build_options(path, **flags))
    if extra_facts:
        report = report._replace(facts={**report.facts, **extra_facts})
    return report


def bom_of(report: Any, **kwargs: Any) -> dict[str, Any]:
    from mlsec.render.cyclonedx import render_bom

    data: dict[str, Any] = json.loads(render_bom(report, **kwargs))
    return data


def components(bom: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every component (nested too) by bom-ref."""
    found: dict[str, dict[str, Any]] = {}

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            found[item["bom-ref"]] = item
            walk(item.get("components", []))

    walk(bom.get("components", []))
    return found


def props(component: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for prop in component.get("properties", []):
        out.setdefault(prop["name"], []).append(prop["value"])
    return out


BomOf = Callable[..., dict[str, Any]]
