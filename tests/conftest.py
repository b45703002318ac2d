"""Shared test helpers: run the real CLI, build scan options, generate files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


def run_cli(
    *args: str | os.PathLike[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mlsec`` in a subprocess: the real entry point, exit code and streams."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mlsec", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli_in_process(
    *args: str | os.PathLike[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run the command line in this interpreter (mlsec.cli.launch.run, both parsers and the
    error boundary), with its own streams, working directory and environment."""
    import io

    from mlsec.cli.launch import run

    argv = [os.fspath(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NO_COLOR", "1")
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        if cwd is not None:
            patch.chdir(cwd)
        patch.setattr(sys, "stdout", out)
        patch.setattr(sys, "stderr", err)
        code = run(argv)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def load_script(name: str) -> Any:
    """A module of scripts/ (they are not a package), e.g. the generators tests compare with."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """The command line, run in-process (fast); see ``cli_subprocess`` for the real one."""
    return run_cli_in_process


@pytest.fixture
def cli_subprocess() -> Callable[..., subprocess.CompletedProcess[str]]:
    """The installed entry point in a fresh interpreter (start-up, streams, signals)."""
    return run_cli


@pytest.fixture
def scan_dir(tmp_path: Path) -> Callable[..., Any]:
    """Scan a directory through the library API and return the report."""
    from mlsec.config import build_options
    from mlsec.scan import scan

    def _scan(path: Path | None = None, **flags: Any) -> Any:
        return scan(build_options(path or tmp_path, **flags))

    return _scan


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Hash caches, database indexes and BOM memos go to a temporary folder, not ~/.cache."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


def network_enabled() -> bool:
    return os.environ.get("MLSEC_NETWORK_TESTS") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if network_enabled():
        return
    skip = pytest.mark.skip(reason="needs network (set MLSEC_NETWORK_TESTS=1)")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def forked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids of the processes this test forks (to check that each is reaped)."""
    pids: list[int] = []
    real_fork = os.fork

    def recording_fork() -> int:
        pid = real_fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recording_fork)
    return pids


def assert_reaped(pids: list[int]) -> None:
    for pid in pids:  # killed and reaped: not even a zombie is left
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The relpaths the pickle analyzer parses (the result cache's racy window off: tests
    write their files just before the scan)."""
    from mlsec import resultcache
    from mlsec.models.containers import PickleModelsAnalyzer

    monkeypatch.setattr(resultcache, "RACY_NS", 0)
    calls: list[str] = []
    real = PickleModelsAnalyzer.analyze_file

    def counting(self, target, ctx):  # type: ignore[no-untyped-def]
        calls.append(target.relpath)
        return real(self, target, ctx)

    monkeypatch.setattr(PickleModelsAnalyzer, "analyze_file", counting)
    return calls
