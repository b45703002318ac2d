"""Builders for the command-line tests: malicious pickles made at test time, git repositories."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
from pathlib import Path
from typing import Any

import pytest

OSV_MINI = Path(__file__).resolve().parents[2] / "fixtures" / "osv-mini"


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo never-run",))


def evil_pickle(path: Path) -> Path:
    """A pickle that would run a shell command if loaded (MLS101, critical)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(_Evil(), protocol=2))
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_SYSTEM": os.devnull,
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty git repository with one commit."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root / "README.md", "demo\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


def ours(data: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(rule, severity, path, suppressed) of mlsec's own findings in a JSON report (modelscan's
    notices, which depend on whether it is installed, left out)."""
    return sorted(
        (f["rule_id"], f["severity"], f["path"], bool(f.get("suppressions")))
        for f in data["findings"]
        if f["source"] == "mlsec" and not f["rule_id"].startswith("MLS19")
    )


def report(proc: Any) -> dict[str, Any]:
    assert proc.stdout, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data
