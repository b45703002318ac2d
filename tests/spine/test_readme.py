from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_readme_rule_table_in_sync() -> None:
    spec = importlib.util.spec_from_file_location("sync_readme", REPO / "scripts/sync_readme.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text == module.synced(text), "run: python scripts/sync_readme.py"
