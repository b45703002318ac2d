"""Builders of the red-team tests: shard reports written by real scans, hostile files."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import evil_pickle
from tests.conftest import run_cli_in_process

__all__ = ["benign_pickle", "dump", "evil_pickle", "load"]


def benign_pickle(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=2))
    return path


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def dump(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def finding_keys(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    """A JSON report's findings as comparable rows."""
    return sorted(
        (f["rule_id"], f["severity"], f["path"], f["member"], f["line"], f["fingerprint"])
        for f in data["findings"]
    )


@pytest.fixture(scope="session")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A repository of 8 folders (an unsafe pickle in each, a benign one in two) scanned
    whole and in 4 shards, each as JSON and SARIF: {"full": json, "json": [4 paths],
    "sarif": [4 paths], "repo": path}."""
    root = tmp_path_factory.mktemp("shards")
    repo = root / "repo"
    for i in range(8):
        evil_pickle(repo / f"d{i}" / "w.pkl")
    benign_pickle(repo / "d0" / "ok.pkl")
    benign_pickle(repo / "d5" / "ok.pkl")
    full = root / "full.json"
    proc = run_cli_in_process(
        "scan", repo, "--no-git", "--no-cache", "--fail-on", "none", "-o", full
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = {"full": full, "json": [], "sarif": [], "repo": repo}
    for k in (1, 2, 3, 4):
        js, sa = root / f"s{k}.json", root / f"s{k}.sarif"
        proc = run_cli_in_process(
            "scan", repo, "--no-git", "--no-cache", "--shard", f"{k}/4", "--fail-on", "none",
            "-o", js, "-o", sa,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        out["json"].append(js)
        out["sarif"].append(sa)
    counts = [len(load(p)["findings"]) for p in out["json"]]
    assert sum(1 for n in counts if n) >= 2, counts  # the shards share the work
    return out
