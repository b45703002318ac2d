"""Regenerate the README rule table from rules/ (tests/spine/test_readme.py checks it)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlsec.rules import load_rules, rule_table_markdown

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"(<!-- rules:begin[^\n]*-->\n).*?(<!-- rules:end -->)", re.DOTALL)


def synced(text: str) -> str:
    table = rule_table_markdown(load_rules())
    return BLOCK.sub(lambda m: m.group(1) + table + m.group(2), text)


if __name__ == "__main__":
    README.write_text(synced(README.read_text(encoding="utf-8")), encoding="utf-8")
