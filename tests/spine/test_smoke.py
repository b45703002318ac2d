"""End-to-end path: a malicious pickle is found through the real CLI."""

from __future__ import annotations

import json
import pickle
from pathlib import Path


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo never-run",))


def test_evil_pickle_found_and_gates(tmp_path: Path, cli) -> None:
    (tmp_path / "model.bin").write_bytes(pickle.dumps(_Evil(), protocol=4))
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    proc = cli("scan", tmp_path, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    hits = [(f["rule_id"], f["severity"], f["path"]) for f in data["findings"]]
    assert ("MLS101", "critical", "model.bin") in hits
    assert not [
        f
        for f in data["findings"]
        if f["path"] == "ok.pkl" and f["severity"] in ("critical", "high")
    ]
