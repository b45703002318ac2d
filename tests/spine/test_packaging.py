"""The wheel carries the rule data and leaves tests and fixtures out; start-up stays light."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_wheel_contains_rules_not_fixtures(tmp_path: Path) -> None:
    builders = pytest.importorskip("hatchling.builders.wheel")
    [wheel] = builders.WheelBuilder(str(REPO)).build(directory=str(tmp_path), versions=["standard"])
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(
        n.removeprefix("mlsec/_rules/")
        for n in names
        if n.startswith("mlsec/_rules/") and n.endswith(".toml")
    )
    expected = sorted(
        p.relative_to(REPO / "rules").as_posix() for p in (REPO / "rules").rglob("*.toml")
    )
    assert shipped == expected
    assert not [n for n in names if n.startswith(("tests/", "fixtures/", "benchmarks/"))]
    assert {"mlsec/cli/__init__.py", "mlsec/cli/launch.py", "mlsec/cli/scan_args.py"} <= set(names)
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "mlsec = mlsec.cli:main" in scripts


def test_cli_start_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys, mlsec.cli.app\n"
        "heavy = {'sigstore', 'pip_audit', 'cyclonedx', 'modelscan', 'git', 'numpy', 'torch'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stderr


def test_scan_without_models_or_signatures_stays_light(tmp_path: Path) -> None:
    """Analyzers import their heavy libraries only when the repository gives them work."""
    (tmp_path / "train.py").write_text("print('hi')\n")
    code = (
        "import sys; from pathlib import Path\n"
        "from mlsec.config import build_options; from mlsec.scan import scan\n"
        f"scan(build_options(Path({str(tmp_path)!r}), use_git=False))\n"
        "heavy = {'sigstore', 'cryptography', 'cyclonedx', 'modelscan', 'git', 'numpy', 'yaml',"
        " 'packaging', 'pip_audit'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stderr
