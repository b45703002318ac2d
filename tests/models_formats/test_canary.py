"""Nothing in a scanned model runs: payloads that would create a file never do."""

from __future__ import annotations

import base64
import json
import marshal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fixtures.generate_formats import (
    keras2_config,
    keras3_config,
    keras_zip,
    write_gguf,
    write_keras_h5,
)
from tests.models_formats.helpers import lambda_layer


def test_canaries_never_fire(tmp_path: Path, cli: Callable[..., Any]) -> None:
    canary = tmp_path / "CANARY"
    command = f"open({str(canary)!r}, 'w').write('fired')"
    marshalled = marshal.dumps(compile(command, "<lambda>", "exec"))
    code = base64.b64encode(marshalled).decode()
    lam3 = lambda_layer(marshalled)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "m.keras").write_bytes(keras_zip(keras3_config([lam3])))
    lam2 = {
        "class_name": "Lambda",
        "config": {"name": "l", "function": [code, None, None], "function_type": "lambda"},
    }
    write_keras_h5(repo / "m.h5", keras2_config([lam2]))
    write_gguf(
        repo / "m.gguf",
        "{{ cycler.__init__.__globals__.__builtins__.open("
        + repr(str(canary))
        + ", 'w').write('fired') }}",
    )
    result = cli("scan", repo, "--format", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert {(f["rule_id"], f["path"]) for f in report["findings"]} >= {
        ("MLS143", "m.gguf"),
        ("MLS151", "m.keras"),
        ("MLS151", "m.h5"),
    }
    assert not canary.exists()
