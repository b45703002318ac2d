from __future__ import annotations

from tests.conftest import REPO, load_script


def test_readme_rule_table_in_sync() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text == load_script("sync_readme").synced(text), "run: python scripts/sync_readme.py"
