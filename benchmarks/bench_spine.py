"""Spine benchmark: start-up time and walking a 10,000-file repository.

Usage: python benchmarks/bench_spine.py [--files 10000] [--runs 5]

Measures, as whole processes (what a CI job pays):
- `mlsec --version`;
- `mlsec scan REPO --format json --select MLS9` on a generated git repository of N small
  files (walk + content sniffing; analyzers see only text files there), and the walk alone
  through the library API.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False, cwd=REPO)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def make_repo(root: Path, files: int) -> None:
    per_dir = 100
    for i in range(files):
        folder = root / f"pkg{i // per_dir:04d}"
        folder.mkdir(exist_ok=True)
        (folder / f"module_{i:05d}.py").write_text(f"VALUE = {i}\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "x"],
        cwd=root,
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    mlsec = [sys.executable, "-m", "mlsec"]
    print(f"mlsec --version: {timed([*mlsec, '--version'], args.runs):.3f} s (median)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_repo(root, args.files)
        sys.path.insert(0, str(REPO))
        from mlsec.config import build_options
        from mlsec.rules import load_rules
        from mlsec.walk import walk

        for use_git in (True, False):
            samples = []
            for _ in range(args.runs):
                start = time.perf_counter()
                result = walk(build_options(root, use_git=use_git), load_rules())
                samples.append(time.perf_counter() - start)
            label = "git ls-files" if use_git else "file system"
            print(
                f"walk {len(result.targets)} files ({label}): "
                f"{statistics.median(samples):.3f} s (median, in process)"
            )
        scan = [*mlsec, "scan", str(root), "--format", "json", "--select", "MLS9"]
        print(f"mlsec scan of {args.files} files: {timed(scan, args.runs):.3f} s (median)")


if __name__ == "__main__":
    main()
