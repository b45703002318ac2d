"""Helpers for the fail-closed tests: hostile files are built here, at test time."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest


class _Reduce:
    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (self.func, self.args)


def evil_pickle(command: str = "echo never-run") -> bytes:
    """A pickle that would call os.system(command) if loaded (it never is)."""
    return pickle.dumps(_Reduce(os.system, command), protocol=4)


def findings_of(stdout: str) -> set[tuple[str, str, str]]:
    """(rule, severity, path) of every finding of a JSON report."""
    return {(f["rule_id"], f["severity"], f["path"]) for f in json.loads(stdout)["findings"]}


@pytest.fixture
def hf_cache(tmp_path: Path) -> Path:
    """A Hugging Face cache folder: snapshot files are relative links into ../../blobs."""
    cache = tmp_path / "hub" / "models--org--name"
    blobs, snap = cache / "blobs", cache / "snapshots" / "0123abcd"
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    (blobs / "aaaa").write_bytes(evil_pickle())
    (blobs / "bbbb").write_text('{"model_type": "bert"}\n')
    (snap / "pytorch_model.bin").symlink_to("../../blobs/aaaa")
    (snap / "config.json").symlink_to("../../blobs/bbbb")
    return cache
