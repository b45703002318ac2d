"""Differential fuzzing of the pickle machine's record-run fast path, for as long as asked.

Each case (a seed) is a generated, maybe mutated pickle of records decoded with runs on and
off (tests/models_pickle/runs_fuzz.py); a case whose observables differ is written to
--out as <seed>.pickle with its caps. CPU-heavy: run it under ``nice -n 19``.
Usage: python scripts/fuzz_pickle_runs.py [--seconds 600] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("fuzz-runs-failures"))
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location(
        "runs_fuzz", ROOT / "tests" / "models_pickle" / "runs_fuzz.py"
    )
    assert spec is not None and spec.loader is not None
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    # a bound on what a case may take (a decode that grew without bound is a finding too)
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    end = time.monotonic() + args.seconds
    seed = args.seed
    cases = failures = 0
    while time.monotonic() < end:
        try:
            found = fuzz.check(seed)
        except MemoryError:
            print(f"seed {seed}: MemoryError")
            seed += 1
            continue
        cases += 1
        if found is not None:
            failures += 1
            data, caps = found
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{seed}.pickle").write_bytes(data)
            (args.out / f"{seed}.json").write_text(json.dumps(caps))
            print(f"seed {seed}: runs on and off differ ({len(data)} bytes, caps {caps})")
        seed += 1
    print(f"{cases} cases (seeds {args.seed}..{seed - 1}), {failures} differ")


if __name__ == "__main__":
    main()
