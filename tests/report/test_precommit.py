"""The pre-commit hooks, run for real by pre-commit (offline) on a temporary repository: an
untracked malicious pickle does not block a commit, a staged one does, and so does a staged
vulnerable pin (mlsec-deps, against the offline database fixtures/osv-mini).

The hook definitions are this repository's .pre-commit-hooks.yaml with one change: language
`unsupported` (the mlsec under test, on PATH) instead of `python`, whose environment pre-commit
would pip-install from the package index.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
OSV = REPO / "fixtures" / "osv-mini"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo never-run",))


def _env(tmp_path: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "NO_COLOR": "1",
    }


def _git(cwd: Path, env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repos(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    pytest.importorskip("pre_commit")
    env = _env(tmp_path)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    definitions = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    for hook in definitions:
        assert hook["language"] == "python" and hook["pass_filenames"] is True
        assert not hook.get("always_run")
        hook["language"] = "unsupported"
    (hooks / ".pre-commit-hooks.yaml").write_text(yaml.safe_dump(definitions))
    _git(hooks, env, "init", "-q")
    _git(hooks, env, "add", ".")
    _git(hooks, env, "commit", "-qm", "hooks")
    rev = _git(hooks, env, "rev-parse", "HEAD").strip()
    work = tmp_path / "work"
    work.mkdir()
    _git(work, env, "init", "-q")
    offline = ["--offline", "--vuln-db", str(OSV)]
    config = {
        "repos": [
            {
                "repo": str(hooks),
                "rev": rev,
                "hooks": [{"id": "mlsec", "args": offline}, {"id": "mlsec-deps", "args": offline}],
            }
        ]
    }
    (work / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    (work / "train.py").write_text("print('training')\n")
    _git(work, env, "add", ".")
    _git(work, env, "commit", "-qm", "start")
    return work, env


def _run(work: Path, env: dict[str, str], *hook: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", *hook],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_untracked_pickle_does_not_block_a_commit(repos: tuple[Path, dict[str, str]]) -> None:
    work, env = repos
    (work / "scratch.pkl").write_bytes(pickle.dumps(_Evil(), protocol=4))  # untracked
    (work / "train.py").write_text("print('training, v2')\n")
    _git(work, env, "add", "train.py")
    proc = _run(work, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MLS101" not in proc.stdout
    assert "mlsec" in proc.stdout and "Passed" in proc.stdout


def test_staged_pickle_blocks_the_commit(repos: tuple[Path, dict[str, str]]) -> None:
    work, env = repos
    (work / "model.bin").write_bytes(pickle.dumps(_Evil(), protocol=4))  # a pickle by content
    _git(work, env, "add", "model.bin")
    proc = _run(work, env, "mlsec")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "MLS101" in proc.stdout and "model.bin" in proc.stdout


def test_staged_vulnerable_pin_blocks_the_commit(repos: tuple[Path, dict[str, str]]) -> None:
    work, env = repos
    (work / "requirements.txt").write_text("mlflow==2.9.0\n")
    _git(work, env, "add", "requirements.txt")
    proc = _run(work, env, "mlsec-deps")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "MLS201" in proc.stdout and "requirements.txt" in proc.stdout


def test_deps_hook_ignores_files_that_are_not_manifests(
    repos: tuple[Path, dict[str, str]],
) -> None:
    work, env = repos
    (work / "model.bin").write_bytes(pickle.dumps(_Evil(), protocol=4))
    _git(work, env, "add", "model.bin")
    proc = _run(work, env, "mlsec-deps")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no files to check" in proc.stdout.lower()


def test_several_staged_files_are_judged_together(repos: tuple[Path, dict[str, str]]) -> None:
    work, env = repos
    (work / "model.bin").write_bytes(pickle.dumps(_Evil(), protocol=4))
    (work / "notes.md").write_text("# notes\n")
    _git(work, env, "add", "model.bin", "notes.md")
    proc = _run(work, env, "mlsec")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "MLS101" in proc.stdout and "model.bin" in proc.stdout
