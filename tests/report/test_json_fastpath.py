"""The JSON report is written as it is and made safe only when it shows a surrogate: the
result is the same as always making it safe, for plain, astral and undecodable text."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from mlsec.config import build_options
from mlsec.render import json as json_render
from mlsec.scan import scan


@pytest.mark.parametrize(
    "name",
    ["plain.pkl", "emoji-\N{GRINNING FACE}.pkl", os.fsdecode(b"bad-\xff.pkl"), "back\\ud800.pkl"],
)
def test_fast_path_writes_what_the_safe_path_writes(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00idq\x00\x85R.")
    (tmp_path / "other.pkl").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    report = scan(build_options(tmp_path, use_git=False, use_cache=False))
    text = json_render.render(report)
    assert text == json_render._dump(json_render.to_data(report)) + "\n"
    data = json.loads(text)
    assert any(f["rule_id"] == "MLS101" for f in data["findings"])
    text.encode("utf-8")  # no lone surrogate reaches the output
