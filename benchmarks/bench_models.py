"""Speed and memory of the pickle-family scan, side by side with picklescan and modelscan.

Generates (once, cached under benchmarks/.work/, git-ignored):
  - ckpt-1g.pt: a 1 GiB torch.save zip checkpoint (64 float32 tensors of 16 MiB);
  - arrays-512m.pkl: a 512 MiB raw protocol-4 pickle of large NumPy arrays;
then times whole processes on each file, one tool after the other, and prints wall time
(best and median of --runs) and peak RSS (from wait4, per child process):

  picklescan -p FILE
  modelscan -p FILE
  mlsec scan FILE --format json                    (the console script: the real CLI)
  python -m mlsec scan FILE --format json          (the same, through runpy)
  python -c 'mlsec.scan.scan(...)'                 (the library path, without the CLI)

Usage: python benchmarks/bench_models.py [--runs 3] [--work DIR]
Needs torch and numpy to generate the inputs (benchmark tools only, not mlsec
dependencies); picklescan and modelscan are looked up next to this Python.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

LIBRARY_SNIPPET = (
    "import sys, json; from pathlib import Path; from mlsec.config import build_options; "
    "from mlsec.scan import scan; r = scan(build_options(Path(sys.argv[1]))); "
    "print(json.dumps([f.rule_id for f in r.findings]))"
)


def make_checkpoint(path: Path) -> None:
    import torch

    state = {f"layers.{i}.weight": torch.zeros(2048, 2048) for i in range(64)}
    torch.save(state, path)


def make_raw_pickle(path: Path) -> None:
    import pickle

    import numpy as np

    arrays = {f"array_{i}": np.zeros(16 * 1024**2, dtype=np.float32) for i in range(8)}
    with open(path, "wb") as handle:
        pickle.dump(arrays, handle, protocol=4)


def run_once(cmd: list[str]) -> tuple[float, int, int, str]:
    """(wall seconds, peak RSS in bytes, exit code, stdout) of one child process."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=REPO
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss * 1024, proc.returncode, out.decode(errors="replace")


def tools(path: Path) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "picklescan": [str(BIN / "picklescan"), "-p", str(path)],
        "modelscan": [str(BIN / "modelscan"), "-p", str(path)],
        # The console script, as users and CI run it (PYTHONPATH points it at this checkout).
        "mlsec (CLI)": [str(BIN / "mlsec"), "scan", str(path), "--format", "json"],
        "python -m mlsec": [python, "-m", "mlsec", "scan", str(path), "--format", "json"],
        "mlsec (library)": [python, "-c", LIBRARY_SNIPPET, str(path)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / ".work")
    parser.add_argument("--generate", nargs=2, metavar=("MAKER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        maker, target = args.generate
        {"make_checkpoint": make_checkpoint, "make_raw_pickle": make_raw_pickle}[maker](
            Path(target)
        )
        return
    args.work.mkdir(parents=True, exist_ok=True)
    inputs = {
        "1 GiB torch.save checkpoint": (args.work / "ckpt-1g.pt", make_checkpoint),
        "512 MiB protocol-4 pickle of arrays": (args.work / "arrays-512m.pkl", make_raw_pickle),
    }
    for path, make in inputs.values():
        if not path.exists():
            # Generate in a child: Linux children inherit the parent's peak RSS, so the
            # benchmark parent must stay small for wait4's figures to mean anything.
            print(f"generating {path} ...", file=sys.stderr)
            subprocess.run(
                [sys.executable, __file__, "--generate", make.__name__, str(path)], check=True
            )
    # An installed package has byte-compiled modules (picklescan and modelscan do); compile
    # mlsec's too, or every run would pay for compiling it (PYTHONDONTWRITEBYTECODE setups).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "mlsec")], check=True)
    print(f"{'input':38} {'tool':16} {'best s':>7} {'median s':>8} {'peak MiB':>9} rc")
    for label, (path, _) in inputs.items():
        commands = {
            tool: cmd
            for tool, cmd in tools(path).items()
            if Path(cmd[0]).exists() or shutil.which(cmd[0]) is not None
        }
        walls: dict[str, list[float]] = {tool: [] for tool in commands}
        peaks: dict[str, list[int]] = {tool: [] for tool in commands}
        codes: dict[str, set[int]] = {tool: set() for tool in commands}
        # Round-robin, so every tool sees the same machine load.
        for _ in range(args.runs):
            for tool, cmd in commands.items():
                wall, peak, code, _out = run_once(cmd)
                walls[tool].append(wall)
                peaks[tool].append(peak)
                codes[tool].add(code)
        for tool in commands:
            print(
                f"{label:38} {tool:16} {min(walls[tool]):7.3f}"
                f" {statistics.median(walls[tool]):8.3f} {max(peaks[tool]) / 1024**2:9.0f}"
                f" {','.join(map(str, sorted(codes[tool])))}"
            )


if __name__ == "__main__":
    main()
