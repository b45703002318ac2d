"""Opcode throughput of mlsec's static pickle machine on a many-small-objects pickle.

Builds (in memory) pickles of many small Python objects, the worst case for an opcode-level
decoder (a few bytes per opcode), runs mlsec.formats.pickle.run_pickle on each and prints
opcodes per second of CPU time (best of --runs; CPU time, so that other processes on a
shared machine count less). ``objects-p4`` is 400,000 of the 5 million records of the
4 GiB many-objects pickle of benchmarks/bench_scale.py (past its first 250,000 records the
memo keeps nothing more, the regime most of that file runs in); the others are what
``pickle.dumps`` writes.
Usage: python benchmarks/bench_pickle_ops.py [--runs 5]
"""

from __future__ import annotations

import argparse
import io
import pickle
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlsec.formats.pickle import run_pickle
from mlsec.formats.streams import Budget, ByteReader


def many_objects(count: int) -> bytes:
    """Records laid out as benchmarks/bench_scale.py's many-objects pickle writes them (every
    string and dict memoized, 740 characters of text each, APPENDS every 1000)."""
    text = b"x" * 740
    out = bytearray(b"\x80\x04\x95" + struct.pack("<Q", 2) + b"]\x94(")
    for i in range(count):
        out += b"}\x94(\x8c\x02id\x94J" + struct.pack("<i", i)
        out += b"\x8c\x04name\x94X" + struct.pack("<I", len(text)) + text + b"\x94"
        out += b"\x8c\x05score\x94G" + struct.pack(">d", i / 7) + b"u"
        if i % 1000 == 999:
            out += b"e("
    return bytes(out + b"e.")


def samples() -> dict[str, bytes]:
    rows = [{"id": i, "name": f"n{i}", "v": i / 3, "t": (i, i + 1), "ok": i % 2 == 0}
            for i in range(200_000)]  # fmt: skip
    return {
        "objects-p4": many_objects(400_000),
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
