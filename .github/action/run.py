"""The GitHub Action's steps (action.yml), as a script the tests run in a temporary workspace.

Inputs arrive as environment variables (``INPUT_*``, set by action.yml through ``env:``), never
through template expansion in a shell; ``args`` is split with :func:`shlex.split` and passed as
an argument list (no shell, no eval). Standard library only: ``install`` runs on the Python
that actions/setup-python provides without putting it on the caller's PATH.

    run.py install   create the virtual environment $MLSEC_VENV and install this action's own
                     checkout into it ($GITHUB_ACTION_PATH)
    run.py scan      run mlsec: SARIF to a file, the Markdown summary to $GITHUB_STEP_SUMMARY,
                     outputs (sarif-file, exit-code, counts by severity) to $GITHUB_OUTPUT;
                     exits non-zero only when mlsec could not run and wrote no SARIF
    run.py gate      exit with the scan's exit code, after the SARIF upload
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

SEVERITIES = ("critical", "high", "medium", "low", "info")
FAIL_ON = (*SEVERITIES[:4], "none")
DEFAULT_CATEGORY = "mlsec/"


def _escape_data(text: str) -> str:
    """Workflow-command data escaping (the runner's own rules)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _error(message: str) -> None:
    print(f"::error title=mlsec::{_escape_data(message)}", flush=True)


def _append(variable: str, text: str) -> None:
    target = os.environ.get(variable)
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(text)


def _output(name: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise ValueError(f"output {name} must be one line")
    _append("GITHUB_OUTPUT", f"{name}={value}\n")


def _input(name: str, default: str = "") -> str:
    return os.environ.get(f"INPUT_{name.upper().replace('-', '_')}", default).strip()


def _summary_error(code: int, lines: list[str]) -> None:
    from mlsec.render.escape import markdown  # the venv's mlsec: its own escaping

    quoted = "".join(f"> {markdown(line)}\n>\n" for line in lines)
    _append(
        "GITHUB_STEP_SUMMARY",
        f"## mlsec scan\n\n**The scan could not run (exit {code}).**\n\n{quoted}",
    )


def _cannot_start(message: str) -> int:
    _error(message)
    _summary_error(2, [message])
    _output("exit-code", "2")
    return 2


def install() -> int:
    target = Path(os.environ["MLSEC_VENV"])
    source = os.environ.get("GITHUB_ACTION_PATH") or str(Path(__file__).resolve().parents[2])
    venv.EnvBuilder(with_pip=True, clear=True).create(target)
    python = target / ("Scripts" if os.name == "nt" else "bin") / "python"
    return subprocess.call(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", source]
    )


def _paths(text: str) -> list[str]:
    """One path per line; a path that starts with '-' cannot be read as an option."""
    paths = [line.strip() for line in text.splitlines() if line.strip()] or ["."]
    return [f"./{p}" if p.startswith("-") else p for p in paths]


def _counts(sarif: Path) -> dict[str, int]:
    counts = dict.fromkeys(SEVERITIES, 0)
    counts["suppressed"] = 0
    try:
        run = json.loads(sarif.read_text(encoding="utf-8"))["runs"][0]
    except (OSError, ValueError, KeyError, IndexError):
        return counts
    items = list(run.get("results", []))
    items += [
        n
        for n in run.get("invocations", [{}])[0].get("toolExecutionNotifications", [])
        if "ruleId" in n.get("properties", {})
    ]
    for item in items:
        props = item.get("properties", {})
        if item.get("suppressions") or props.get("suppressed"):
            counts["suppressed"] += 1
        elif props.get("severity") in counts:
            counts[props["severity"]] += 1
    return counts


def scan() -> int:
    fail_on = _input("fail-on", "high").lower()
    if fail_on not in FAIL_ON:
        return _cannot_start(f"fail-on must be one of {', '.join(FAIL_ON)}, not {fail_on!r}")
    try:
        extra = shlex.split(_input("args"))
    except ValueError as exc:
        return _cannot_start(f"args cannot be split like a shell command line: {exc}")
    out_dir = Path(tempfile.mkdtemp(prefix="mlsec-", dir=os.environ.get("RUNNER_TEMP") or None))
    sarif = out_dir / "results.sarif"
    summary = out_dir / "summary.md"
    command = [sys.executable, "-m", "mlsec", "scan", *_paths(_input("path", "."))]
    command += ["--format", "sarif", "--output", str(sarif), "--summary", str(summary)]
    command += ["--fail-on", fail_on]
    if _input("config"):
        command += ["--config", _input("config")]
    category = _input("category", DEFAULT_CATEGORY)
    if category and category != DEFAULT_CATEGORY:
        command += ["--category", category]
    database = os.environ.get("MLSEC_OFFLINE_DB", "").strip()
    if database:
        command += ["--offline", "--vuln-db", database]
    command += extra
    # Nothing mlsec prints (file names from the scanned repository among it) can be read by
    # the runner as a workflow command.
    token = secrets.token_hex(16)
    print(f"::stop-commands::{token}", flush=True)
    proc = subprocess.run(command, stderr=subprocess.PIPE, text=True, errors="replace")
    sys.stderr.write(proc.stderr)
    sys.stderr.flush()
    print(f"::{token}::", flush=True)
    code = proc.returncode
    _output("exit-code", str(code))
    written = sarif.is_file() and sarif.stat().st_size > 0
    if summary.is_file():
        _append("GITHUB_STEP_SUMMARY", summary.read_text(encoding="utf-8", errors="replace"))
    if code not in (0, 1):
        last = [line for line in proc.stderr.splitlines() if line.strip()]
        message = "\n".join(last[-5:]) or f"mlsec exited with {code}"
        _error(message)
        if not summary.is_file():
            _summary_error(code, last[-5:] or [message])
    if not written:
        return code or 2
    _output("sarif-file", str(sarif))
    counts = _counts(sarif)
    for name, value in counts.items():
        _output(name, str(value))
    _output("findings", str(sum(counts[s] for s in SEVERITIES)))
    return 0


def gate() -> int:
    code = os.environ.get("MLSEC_EXIT_CODE", "").strip()
    if not code.isdigit():
        _error("the scan step recorded no exit code")
        return 2
    if code == "1":
        print("mlsec: findings at or above the fail-on severity (see the job summary)")
    elif code != "0":
        print(f"mlsec: the scan was incomplete or could not run (exit {code})")
    return int(code)


def main(argv: list[str]) -> int:
    commands = {"install": install, "scan": scan, "gate": gate}
    if len(argv) != 2 or argv[1] not in commands:
        print(f"usage: run.py {'|'.join(commands)}", file=sys.stderr)
        return 2
    return commands[argv[1]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
