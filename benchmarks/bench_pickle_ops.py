"""Opcode throughput of mlsec's static pickle machine on a many-small-objects pickle.

Builds (in memory) pickles of many small Python objects, the worst case for an opcode-level
decoder (a few bytes per opcode), runs mlsec.formats.pickle.run_pickle on each and prints
opcodes per second of CPU time (best of --runs; CPU time, so that other processes on a
shared machine count less). Usage: python benchmarks/bench_pickle_ops.py [--runs 5]
"""

from __future__ import annotations

import argparse
import io
import pickle
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlsec.formats.pickle import run_pickle
from mlsec.formats.streams import Budget, ByteReader


def samples() -> dict[str, bytes]:
    rows = [{"id": i, "name": f"n{i}", "v": i / 3, "t": (i, i + 1), "ok": i % 2 == 0}
            for i in range(200_000)]  # fmt: skip
    return {
        "records-p4": pickle.dumps(rows, protocol=4),
        "records-p2": pickle.dumps(rows, protocol=2),
        "ints-p4": pickle.dumps(list(range(1_000_000)), protocol=4),
        "strings-p0": pickle.dumps([f"s{i}" for i in range(300_000)], protocol=0),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for name, data in samples().items():
        best = float("inf")
        ops = 0
        for _ in range(args.runs):
            budget = Budget(timeout=600, max_ops=10**10, max_uncompressed=10**12, max_ratio=10**6)
            start = time.process_time()
            res = run_pickle(ByteReader(io.BytesIO(data), len(data)), budget)
            best = min(best, time.process_time() - start)
            assert res.error is None, res.error
            ops = res.ops
        print(f"{name:12s} {len(data) / 1e6:7.1f} MB {ops / 1e6:6.2f} M opcodes"
              f" {best:6.3f} s CPU  {ops / best / 1e6:5.2f} M opcodes/s")  # fmt: skip


if __name__ == "__main__":
    main()
