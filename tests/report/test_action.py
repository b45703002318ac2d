"""The GitHub Action: its shell steps (.github/action/run.py) run in a temporary workspace with
GITHUB_OUTPUT and GITHUB_STEP_SUMMARY, injection attempts through `path` and `args` stay data,
every action is pinned to a commit, no input is expanded inside `run:`, and zizmor is clean."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / ".github" / "action" / "run.py"
SARIF_SCHEMA = json.loads((REPO / "fixtures" / "schemas" / "sarif-schema-2.1.0.json").read_text())


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo never-run",))


def _workspace(tmp_path: Path) -> Path:
    work = tmp_path / "workspace"
    (work / "ml").mkdir(parents=True)
    (work / "ml" / "model.pkl").write_bytes(pickle.dumps(_Evil(), protocol=4))
    (work / "README.md").write_text("# a repository\n")
    return work


def _step(tmp_path: Path, command: str, cwd: Path, **inputs: str) -> tuple[int, dict, str, str]:
    output = tmp_path / "github_output"
    summary = tmp_path / "step_summary"
    runner_temp = tmp_path / "runner_temp"
    runner_temp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_", "MLSEC_"))}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "NO_COLOR": "1",
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_ACTION_PATH": str(REPO),
            "RUNNER_TEMP": str(runner_temp),
        }
    )
    env.update({f"INPUT_{k.upper()}": v for k, v in inputs.items()})
    proc = subprocess.run(
        [sys.executable, str(RUN), command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outputs = dict(
        line.split("=", 1) for line in (output.read_text() if output.exists() else "").splitlines()
    )
    text = summary.read_text() if summary.exists() else ""
    return proc.returncode, outputs, text, proc.stdout + proc.stderr


def test_findings_upload_sarif_then_the_gate_fails(tmp_path: Path) -> None:
    work = _workspace(tmp_path)
    code, outputs, summary, log = _step(tmp_path, "scan", work, path=".", fail_on="high")
    assert code == 0, log  # the step passes so that the SARIF upload runs
    assert outputs["exit-code"] == "1"
    assert outputs["critical"] == "1" and outputs["high"] == "0"
    assert int(outputs["findings"]) >= 1 and outputs["suppressed"] == "0"
    sarif = json.loads(Path(outputs["sarif-file"]).read_text())
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(sarif)
    [evil] = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "MLS101"]
    location = evil["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "ml/model.pkl" and "region" not in location
    assert sarif["runs"][0]["automationDetails"]["id"] == "mlsec/"
    assert "## mlsec scan" in summary and "MLS101" in summary
    assert "::stop-commands::" in log  # scanned names cannot issue workflow commands
    env_code = _gate(tmp_path, outputs["exit-code"])
    assert env_code == 1


def _gate(tmp_path: Path, exit_code: str) -> int:
    env = {**os.environ, "MLSEC_EXIT_CODE": exit_code}
    return subprocess.run([sys.executable, str(RUN), "gate"], env=env, cwd=tmp_path).returncode


def test_clean_repository_passes(tmp_path: Path) -> None:
    work = tmp_path / "clean"
    work.mkdir()
    (work / "train.py").write_text("print('hi')\n")
    code, outputs, summary, log = _step(tmp_path, "scan", work)
    assert code == 0 and outputs["exit-code"] == "0", log
    assert outputs["critical"] == outputs["high"] == "0"
    assert _gate(tmp_path, "0") == 0
    assert "passed" in summary


def test_injection_through_path_stays_a_path(tmp_path: Path) -> None:
    work = _workspace(tmp_path)
    code, outputs, summary, log = _step(tmp_path, "scan", work, path='"; touch pwned; "')
    assert not (work / "pwned").exists() and not list(tmp_path.rglob("pwned"))
    assert outputs["exit-code"] == "2"
    assert code == 2  # the scan could not run: the step fails with mlsec's own message
    assert "sarif-file" not in outputs
    assert "::error title=mlsec::" in log
    assert "could not run" in summary


def test_injection_through_args_is_never_run_by_a_shell(tmp_path: Path) -> None:
    work = _workspace(tmp_path)
    hostile = "--fail-on none; touch pwned1 && touch pwned2 $(touch pwned3) `touch pwned4` | tee x"
    code, outputs, summary, log = _step(tmp_path, "scan", work, args=hostile)
    assert not list(tmp_path.rglob("pwned*")) and not (work / "x").exists()
    assert outputs["exit-code"] == "2" and code == 2, log
    assert "could not run" in summary


def test_args_are_split_like_a_command_line(tmp_path: Path) -> None:
    work = _workspace(tmp_path)
    code, outputs, _, log = _step(tmp_path, "scan", work, args="--fail-on 'none'")
    assert code == 0 and outputs["exit-code"] == "0", log  # the gate is off
    assert outputs["critical"] == "1"


def test_a_path_that_looks_like_an_option_is_a_path(tmp_path: Path) -> None:
    work = _workspace(tmp_path)
    code, outputs, _, _ = _step(tmp_path, "scan", work, path="--fail-on=none")
    assert outputs["exit-code"] == "2" and code == 2  # "./--fail-on=none" does not exist


def test_bad_fail_on_is_reported_without_running(tmp_path: Path) -> None:
    work = _workspace(tmp_path)
    code, outputs, summary, log = _step(tmp_path, "scan", work, fail_on="high; rm -rf /")
    assert code == 2 and outputs == {"exit-code": "2"}
    assert "fail-on must be one of" in log and "could not run" in summary


def test_category_reaches_the_sarif(tmp_path: Path) -> None:
    work = _workspace(tmp_path)
    _, outputs, _, log = _step(tmp_path, "scan", work, category="ml-models")
    sarif = json.loads(Path(outputs["sarif-file"]).read_text())
    assert sarif["runs"][0]["automationDetails"]["id"] == "ml-models/", log


# -- the definitions ------------------------------------------------------------------------

DEFINITIONS = [
    REPO / "action.yml",
    *sorted((REPO / ".github" / "workflows").glob("*.yml")),
    *sorted((REPO / "examples" / "workflows").glob("*.yml")),  # the README's examples
]


def _steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    if "runs" in document:
        return list(document["runs"].get("steps", []))
    return [s for job in document.get("jobs", {}).values() for s in job.get("steps", [])]


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_no_expression_inside_run_and_every_action_pinned(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    for step in _steps(document):
        assert "${{" not in step.get("run", ""), step
        uses = step.get("uses")
        if uses and not uses.startswith("./"):
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), uses
        if uses and uses.startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False
    if "jobs" in document:
        assert document["permissions"] == {}


def test_action_installs_into_its_own_environment() -> None:
    action = yaml.safe_load((REPO / "action.yml").read_text())
    [setup] = [s for s in action["runs"]["steps"] if "setup-python" in s.get("uses", "")]
    assert setup["with"]["update-environment"] is False  # the caller's PATH is untouched
    assert {"path", "fail-on", "config", "category", "offline-db", "args", "upload-sarif"} <= set(
        action["inputs"]
    )
    assert {"sarif-file", "exit-code", "critical", "high", "medium", "low"} <= set(
        action["outputs"]
    )


def test_zizmor_is_clean() -> None:
    zizmor = shutil.which("zizmor") or shutil.which("zizmor", path=str(Path(sys.executable).parent))
    if zizmor is None:
        pytest.skip("zizmor is not installed (it is in the test extra)")
    proc = subprocess.run(
        [zizmor, "--offline", "--no-progress", "--format", "plain", *map(str, DEFINITIONS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_install_uses_its_own_environment_and_the_actions_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("action_run", RUN)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    created: list[Path] = []
    calls: list[list[str]] = []
    monkeypatch.setattr(module.venv.EnvBuilder, "create", lambda self, d: created.append(Path(d)))
    monkeypatch.setattr(module.subprocess, "call", lambda argv: calls.append(argv) or 0)
    monkeypatch.setenv("MLSEC_VENV", str(tmp_path / "venv"))
    monkeypatch.setenv("GITHUB_ACTION_PATH", "/actions/mlsec-dev/mlsec/v0.1.0")
    assert module.install() == 0
    assert created == [tmp_path / "venv"]
    [argv] = calls
    assert argv[0] == str(tmp_path / "venv" / "bin" / "python")
    assert argv[1:4] == ["-m", "pip", "install"] and argv[-1] == "/actions/mlsec-dev/mlsec/v0.1.0"


# -- action.yml's own steps, run as the runner would (bash, env from the step's `env:`) ------


def _expression(text: str, context: dict[str, str]) -> str:
    """Evaluate the few GitHub expression forms action.yml uses (our own file, not input)."""

    def lookup(name: str) -> str:
        return context.get(name, "")

    def fmt(template: str, *args: str) -> str:
        return template.format(*args)

    code = re.sub(r"\b((?:inputs|steps|runner)\.[\w.-]+)", r'lookup("\1")', text)
    code = code.replace("&&", " and ").replace("||", " or ").replace("format(", "fmt(")
    return str(eval(code, {"__builtins__": {}}, {"lookup": lookup, "fmt": fmt}))


def _substitute(text: str, context: dict[str, str]) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _expression(m.group(1), context), text)


def _run_action(
    tmp_path: Path, work: Path, preset: dict[str, str] | None = None, **inputs: str
) -> tuple[dict[str, str], list[str], str]:
    """Run action.yml's `run:` steps in order; `uses:` steps are skipped (setup-python is
    this interpreter, the cache and the upload are GitHub's). Returns the context (inputs,
    step outputs), the names of the steps that ran, and the job summary."""
    action = yaml.safe_load((REPO / "action.yml").read_text())
    temp = tmp_path / "runner-temp"
    (temp / "mlsec-venv" / "bin").mkdir(parents=True)
    # The install step's virtual environment: this interpreter (a symlink would lose its venv).
    wrapper = temp / "mlsec-venv" / "bin" / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    summary = tmp_path / "summary.md"
    context = {f"inputs.{k}": str(v.get("default", "")) for k, v in action["inputs"].items()}
    context.update({f"inputs.{k.replace('_', '-')}": v for k, v in inputs.items()})
    context["runner.temp"] = str(temp)
    context.update(preset or {})
    ran: list[str] = []
    for index, step in enumerate(action["runs"]["steps"]):
        name = step.get("id") or step.get("name") or str(index)
        condition = step.get("if")
        if condition and _expression(condition, context) in ("False", ""):
            continue
        if "uses" in step or name == "Install mlsec (its own virtual environment)":
            continue  # GitHub's actions; the install needs the package index
        output = tmp_path / f"output-{index}"
        output.write_text("")
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_", "MLSEC_"))
        }
        env.update({k: _substitute(str(v), context) for k, v in step.get("env", {}).items()})
        env.update(
            {
                "GITHUB_OUTPUT": str(output),
                "GITHUB_STEP_SUMMARY": str(summary),
                "GITHUB_ACTION_PATH": str(REPO),
                "RUNNER_TEMP": str(temp),
                "PYTHONPATH": str(REPO),
                "NO_COLOR": "1",
            }
        )
        proc = subprocess.run(
            ["bash", "-e", "-c", step["run"]],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        ran.append(name)
        for line in output.read_text().splitlines():
            key, _, value = line.partition("=")
            context[f"steps.{step.get('id', index)}.outputs.{key}"] = value
        if proc.returncode != 0:
            context["failed-step"] = name
            context["failed-code"] = str(proc.returncode)
            break
    return context, ran, summary.read_text() if summary.exists() else ""


def test_action_steps_findings_fail_the_gate_after_the_scan(tmp_path: Path) -> None:
    work = _workspace(tmp_path)
    context, ran, summary = _run_action(tmp_path, work, path="ml", fail_on="critical")
    assert ran == ["scan", "Gate"]
    assert context["steps.scan.outputs.exit-code"] == "1"
    assert context["steps.scan.outputs.critical"] == "1"
    assert Path(context["steps.scan.outputs.sarif-file"]).is_file()
    assert context["failed-step"] == "Gate" and context["failed-code"] == "1"
    assert "MLS101" in summary


def test_action_steps_injection_fails_the_scan_step_with_mlsecs_message(tmp_path: Path) -> None:
    work = _workspace(tmp_path)
    context, ran, summary = _run_action(
        tmp_path, work, path='"; touch pwned; "', args="$(touch pwned2)"
    )
    assert not list(tmp_path.rglob("pwned*"))
    assert ran == ["scan"] and context["failed-code"] == "2"
    assert "steps.scan.outputs.sarif-file" not in context  # nothing to upload
    assert "could not run" in summary


def test_action_steps_offline_database_is_passed(tmp_path: Path) -> None:
    work = _workspace(tmp_path)
    (work / "requirements.txt").write_text("mlflow==2.9.0\n")
    temp = tmp_path / "runner-temp"
    # The cache step restored the database (a hit): the download step is skipped.
    shutil.copytree(REPO / "fixtures" / "osv-mini", temp / "mlsec-osv")
    context, ran, _ = _run_action(
        tmp_path,
        work,
        offline_db="true",
        fail_on="none",
        preset={"steps.db-cache.outputs.cache-hit": "true"},
    )
    assert ran == ["db-key", "scan", "Gate"], context
    assert "failed-step" not in context and context["steps.scan.outputs.exit-code"] == "0"
    assert context["steps.db-key.outputs.key"].startswith("mlsec-osv-pypi-")
    sarif = json.loads(Path(context["steps.scan.outputs.sarif-file"]).read_text())
    assert "MLS201" in {r["ruleId"] for r in sarif["runs"][0]["results"]}
