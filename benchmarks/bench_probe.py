"""Walk cost of content probing: CPU time of mlsec's walk over 10,000 source files.

Usage: python benchmarks/bench_probe.py [--files 10000] [--runs 9] [--checkout PATH]

Two trees are generated in a temporary folder: the spine benchmark's (N one-line
``VALUE = i`` modules, each starting with a byte that is also a pickle opcode) and N files
copied from this Python's standard library (sources, test data, every kind of text and
binary file it ships, sorted by path). Each is walked in process, ``--runs`` times, and the
process CPU time (not wall time: shared CI machines vary) is reported, min and median, with
the kinds the walk found. ``--checkout`` walks with the mlsec of another checkout (e.g. the
commit before content probing) to compare.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_spine(root: Path, files: int) -> None:
    for i in range(files):
        folder = root / f"pkg{i // 100:04d}"
        folder.mkdir(exist_ok=True)
        (folder / f"module_{i:05d}.py").write_text(f"VALUE = {i}\n")


def make_stdlib(root: Path, files: int) -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    count = 0
    for path in sorted(stdlib.rglob("*")):
        if count >= files:
            break
        if "site-packages" in path.parts or not path.is_file() or path.is_symlink():
            continue
        if path.suffix == ".pyc" or path.stat().st_size > 1024**2:
            continue
        folder = root / f"d{count // 100:03d}"
        folder.mkdir(exist_ok=True)
        shutil.copyfile(path, folder / f"{count:05d}_{path.name}")
        count += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--checkout", type=Path, default=REPO)
    args = parser.parse_args()
    sys.path.insert(0, str(args.checkout.resolve()))
    from mlsec.config import build_options
    from mlsec.rules import load_rules
    from mlsec.walk import walk

    rules = load_rules()
    with tempfile.TemporaryDirectory() as tmp:
        for label, make in (("spine", make_spine), ("stdlib", make_stdlib)):
            root = Path(tmp) / label
            root.mkdir()
            make(root, args.files)
            options = build_options(root, use_git=False)
            walk(options, rules)  # warm the page cache and the imports
            samples = []
            for _ in range(args.runs):
                start = time.process_time()
                result = walk(options, rules)
                samples.append(time.process_time() - start)
            kinds = collections.Counter(t.kind.value for t in result.targets)
            print(
                f"{label}: {len(result.targets)} files, walk CPU min {min(samples):.3f} s,"
                f" median {statistics.median(samples):.3f} s; kinds {dict(kinds.most_common())}"
            )


if __name__ == "__main__":
    main()
