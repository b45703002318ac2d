"""The start-up fast path (mlsec/cli/launch.py) parses `mlsec scan` exactly as typer does.

Every command line the fast path accepts must give scan_command the same arguments typer
would; everything else must be left to typer (help, errors, other commands).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import mlsec.cli.run
from mlsec.cli import app as cli
from mlsec.cli.launch import parse_scan, run
from tests.conftest import REPO, load_script


def _typer_arguments(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any] | None:
    """The keyword arguments typer hands to scan_command, or None when typer refuses argv."""
    seen: list[dict[str, Any]] = []

    def capture(**kwargs: Any) -> int:
        seen.append(kwargs)
        return 0

    monkeypatch.setattr(cli, "scan_command", capture)
    result = CliRunner().invoke(cli.app, argv)
    if result.exit_code == 2 and not seen:  # a usage error
        return None
    assert result.exit_code == 0, result.output
    assert len(seen) == 1
    return seen[0]


def _normalised(arguments: dict[str, Any]) -> dict[str, Any]:
    """Typer hands multiple options over as a list or tuple; compare them as lists."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in arguments.items()}


def test_generated_option_table_is_current() -> None:
    current = (REPO / "mlsec/cli/scan_args.py").read_text(encoding="utf-8")
    assert current == load_script("sync_cli").rendered(), "run: python scripts/sync_cli.py"


ACCEPTED = [
    ["scan"],
    ["scan", "repo"],
    ["scan", "repo", "--format", "json"],
    ["scan", "--format=sarif", "repo"],
    ["scan", "-f", "markdown", "-o", "out/report.md", "repo"],
    ["scan", "repo", "--fail-on", "none", "--fail-on", "medium"],  # the last one wins
    ["scan", "--offline", "--vuln-db", "db/all.zip", "--config", "c.toml", "."],
    ["scan", "--offline", "--online"],
    ["scan", "--select", "MLS1", "--select=MLS2,MLS3", "--ignore", "MLS102"],
    ["scan", "--baseline", "old.sarif", "--trusted-root", "root.json", "--no-git"],
    ["scan", "--summary", "summary.md", "--format", "cyclonedx"],
    ["scan", "--output=o.json", "--", "--odd-dir-name"],
    ["scan", "--format", "table", "--", "repo"],
    ["scan", "dir with spaces", "--output", "x=y.json"],
    ["scan", "a", "b", "c/d.pt"],  # several PATHs
    ["scan", "-o", "r.sarif", "--output", "json=r.txt", "-q", "--no-progress"],
    ["scan", "--min-severity", "medium", "--color", "never", "-v", "--category", "ml/"],
    ["scan", "--diff", "origin/main", "--shard", "2/4", "--jobs", "3", "-j", "2"],
    ["scan", "--no-config", "--follow-symlinks", "--respect-gitignore", "--no-cache"],
    ["scan", "--cache-dir", "cache", "--config=c.toml"],
]


@pytest.mark.parametrize("argv", ACCEPTED, ids=" ".join)
def test_fast_path_matches_typer(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    fast = parse_scan(argv)
    assert fast is not None
    assert _normalised(fast) == _normalised(_typer_arguments(argv, monkeypatch) or {})


REFUSED = [
    [],
    ["--version"],
    ["rules"],
    ["bom", "."],
    ["scan", "--help"],
    ["scan", "-h"],
    ["scan", "-fjson"],  # attached short values: left to click
    ["scan", "--format", "JSON"],  # not a choice: typer's error message
    ["scan", "--format"],  # missing value
    ["scan", "--output", ""],
    ["scan", "--select", "-x"],
    ["scan", ""],
    ["scan", "a", ""],
    ["scan", "--jobs", "many"],  # not a number: typer's message
    ["scan", "--color", "sometimes"],
    ["scan", "-"],
    ["scan", "--offline=yes"],
    ["scan", "--unknown"],
    ["scan", "--form", "json"],  # no abbreviations
]


@pytest.mark.parametrize("argv", REFUSED, ids=lambda a: " ".join(a) or "(empty)")
def test_fast_path_leaves_the_rest_to_typer(argv: list[str]) -> None:
    assert parse_scan(argv) is None


TOKENS = st.sampled_from(
    [
        "--format", "-f", "json", "table", "--output", "-o", "out.json", "--fail-on", "low",
        "none", "--config", "--offline", "--online", "--vuln-db", "--baseline", "--select",
        "MLS1", "MLS2,MLS3", "--ignore", "--trusted-root", "--no-git", "--summary", "--", "-",
        "repo", "other", "--format=json", "--select=MLS4", "--no-git=1", "-x", "", "=",
        "--jobs", "2", "x2", "-q", "-v", "--min-severity", "info", "--diff", "--no-config",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(TOKENS, max_size=8))
def test_fast_path_agrees_with_typer_on_random_command_lines(tokens: list[str]) -> None:
    """Whatever the fast path accepts, typer accepts and reads the same way."""
    argv = ["scan", *tokens]
    fast = parse_scan(argv)
    if fast is None:
        return
    with pytest.MonkeyPatch.context() as monkeypatch:
        typer_arguments = _typer_arguments(argv, monkeypatch)
    assert typer_arguments is not None, f"typer refuses {argv} but the fast path accepts it"
    assert _normalised(fast) == _normalised(typer_arguments)


def _run_entry_point(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )


def test_scan_of_a_model_starts_without_typer_or_dataclasses(tmp_path: Path) -> None:
    """The start-up budget: no typer/click/rich for JSON output, no dataclasses (see
    mlsec/findings.py), no logging or thread pools (mlsec.hashing) on the path a checkpoint
    scan takes. (modelscan, which brings its own
    imports, is off here: it skips large checkpoints anyway.)"""
    import zipfile

    (tmp_path / ".mlsec.toml").write_text("[models]\nmodelscan = false\n")

    with zipfile.ZipFile(tmp_path / "model.pt", "w") as archive:  # a minimal torch.save zip
        archive.writestr("model/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("model/version", b"3\n")
    code = (
        "import sys\n"
        f"sys.argv = ['mlsec', 'scan', {str(tmp_path)!r}, '--format', 'json', '--no-git']\n"
        "import mlsec.cli\n"
        "try:\n    mlsec.cli.main()\n"
        "except SystemExit as exc:\n"
        "    heavy = {'typer', 'click', 'rich', 'dataclasses', 'logging', 'concurrent'}\n"
        "    loaded = {m.split('.')[0] for m in sys.modules} & heavy\n"
        "    print('exit', exc.code, sorted(loaded), file=sys.stderr)\n"
    )
    proc = _run_entry_point(code, tmp_path)
    assert proc.stderr.strip() == "exit 0 []", proc.stderr
    report = json.loads(proc.stdout)
    assert [(f["rule_id"], f["path"]) for f in report["findings"]] == [("MLS102", "model.pt")]


def test_fast_path_crash_is_exit_2_without_traceback(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        f"sys.argv = ['mlsec', 'scan', {str(tmp_path)!r}, '--format', 'json']\n"
        "import mlsec.cli.run\n"
        "def broken(**kwargs):\n    raise RuntimeError('boom')\n"
        "mlsec.cli.run.scan_command = broken\n"
        "import mlsec.cli\n"
        "mlsec.cli.main()\n"
    )
    proc = _run_entry_point(code, tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "mlsec: error: internal error: RuntimeError: boom (please report this)\n"


def test_closed_stdout_is_not_a_crash(tmp_path: Path) -> None:
    """`mlsec scan --format json | head -1` where head has gone: exit 1 like click, quietly."""
    (tmp_path / "train.py").write_text("print('hi')\n")
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout fails with EPIPE
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "mlsec", "scan", str(tmp_path), "-f", "json", "--no-git"],
            stdout=write_end, stderr=subprocess.PIPE, env=env, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert proc.returncode == 1
    assert proc.stderr == ""


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "typer"])
def test_interrupted_scan_exits_130_on_both_paths(
    fast: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C is not exit 1 (click's code for it, and mlsec's code for findings)."""

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(mlsec.cli.run, "run_scan", interrupted)
    # An attached short value (-fjson) is left to typer.
    argv = ["scan", str(tmp_path), *(["--format", "json"] if fast else ["-fjson"])]
    assert (parse_scan(argv) is not None) is fast
    assert run(argv) == 130
    assert capsys.readouterr().err == "mlsec: error: interrupted\n"


def test_one_error_boundary_for_both_parsers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same MlsecError diagnostic and exit 2 whichever parser read the command line."""
    missing = str(tmp_path / "nope")
    for argv in (["scan", missing], ["scan", "-fjson", missing]):
        assert run(argv) == 2
        assert capsys.readouterr().err == (
            f"mlsec: error: path not found: {missing}\nhint: pass a directory or a file to scan\n"
        )


def test_usage_errors_are_clicks_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["scan", "--format", "JSON"]) == 2
    assert "Invalid value for '--format'" in capsys.readouterr().err
    assert run(["--version"]) == 0
