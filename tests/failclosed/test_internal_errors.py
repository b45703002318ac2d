"""An analyzer that fails internally makes the scan exit 2, and the partial report (every
other analyzer's findings, the error entry) is still written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.failclosed.helpers import evil_pickle, findings_of

# Break one analyzer from inside the real CLI process, then run the real entry point.
_BREAK = (
    "import sys, importlib\n"
    "module, attr = sys.argv.pop(1).split(':')\n"
    "cls, method = attr.split('.')\n"
    "def boom(*args, **kwargs):\n"
    "    raise ZeroDivisionError('injected bug')\n"
    "setattr(getattr(importlib.import_module(module), cls), method, boom)\n"
    "sys.argv[0] = 'mlsec'\n"
    "from mlsec.cli import main\n"
    "main()\n"
)


def _run(broken: str, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-c", _BREAK, broken, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("broken", "analyzer", "path"),
    [
        ("mlsec.analyzers.dependencies:DependencyAnalyzer.analyze", "dependencies", "."),
        (
            "mlsec.models.checks:ModelFormatsAnalyzer.analyze_file",
            "model-formats",
            "w.safetensors",
        ),
        ("mlsec.signatures.check:SignatureCheck.analyze", "signatures", "."),
    ],
)
def test_internal_error_exits_2_with_the_partial_report(
    tmp_path: Path, broken: str, analyzer: str, path: str
) -> None:
    (tmp_path / "evil.pkl").write_bytes(evil_pickle())
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    (tmp_path / "w.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.sig").write_text("{}")
    output = tmp_path / "out" / "report.json"
    proc = _run(broken, "scan", tmp_path, "--format", "json", "--output", output)
    assert proc.returncode == 2, proc.stderr
    report = json.loads(output.read_text())
    internal = [e for e in report["errors"] if e["internal"]]
    assert [(e["analyzer"], e["path"]) for e in internal] == [(analyzer, path)]
    assert "ZeroDivisionError: injected bug" in internal[0]["message"]
    assert ("MLS101", "critical", "evil.pkl") in findings_of(output.read_text())
    assert "Traceback" not in proc.stderr


def test_internal_error_in_one_bom_model_exits_2(tmp_path: Path) -> None:
    (tmp_path / "evil.pkl").write_bytes(evil_pickle())
    output = tmp_path / "out.json"
    proc = _run(
        "mlsec.aibom.build:AibomBuilder._model",
        "scan",
        tmp_path,
        "--format",
        "cyclonedx",
        "--output",
        output,
    )
    assert proc.returncode == 2, proc.stderr
    assert json.loads(output.read_text())["bomFormat"] == "CycloneDX"
