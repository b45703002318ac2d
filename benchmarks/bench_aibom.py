"""Benchmark: the AI bill of materials of a repository with 2 GiB of weights.

Generates (once, then reused) a Hugging Face style model folder with a card, a config and two
1 GiB safetensors shards, outside any git work tree, then times, as whole processes:

1. ``sha256sum`` over the weight files (the reference; files warm in the page cache);
2. ``mlsec bom DIR`` with an empty hash cache (target: at most 1.2x the sha256sum time);
3. ``mlsec bom DIR`` again, reusing the hash cache (target: under 0.5 s);
4. for reference, ``mlsec scan DIR --format json`` with the same warm cache: the fixed cost of
   starting mlsec and running every analyzer, which the BOM run includes;
5. a git repository of 1,000 small model files (``--models``; safetensors and pickles, one
   commit): ``mlsec bom`` warm (hash cache and validation memo filled by a first run; target
   under 1 s), ``mlsec scan --format cyclonedx`` warm, and ``mlsec scan --format json`` for
   the scan's own share.

Run: ``/work/venv/bin/python benchmarks/bench_aibom.py [--dir PATH] [--size-mib 2048]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CARD = """---
license: apache-2.0
pipeline_tag: text-generation
datasets:
- HuggingFaceFW/fineweb
---

# bench-model

A model folder made by benchmarks/bench_aibom.py.
"""


def write_shard(path: Path, size: int) -> None:
    """A valid safetensors file holding one U8 tensor of ``size`` bytes of random data."""
    header = json.dumps(
        {"weight": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}
    ).encode()
    header += b" " * (-len(header) % 8)
    chunk = 64 * 1024 * 1024
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        left = size
        while left:
            n = min(chunk, left)
            handle.write(os.urandom(n))
            left -= n


def generate(folder: Path, total_mib: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(CARD, encoding="utf-8")
    (folder / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}),
        encoding="utf-8",
    )
    shard_size = total_mib * 1024 * 1024 // 2
    shards = [folder / f"model-0000{i}-of-00002.safetensors" for i in (1, 2)]
    for shard in shards:
        if not shard.exists() or shard.stat().st_size < shard_size:
            print(f"writing {shard} ({shard_size >> 20} MiB)", file=sys.stderr)
            write_shard(shard, shard_size)
    return shards


def generate_many(root: Path, count: int) -> None:
    """A git repository of ``count`` small model files (half safetensors, half pickles)."""
    import pickle

    if (root / ".git").exists() and len(list((root / "models").iterdir())) == count:
        return
    shutil.rmtree(root, ignore_errors=True)
    (root / "models").mkdir(parents=True)
    for index in range(count):
        if index % 2:
            header = json.dumps(
                {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
            ).encode()
            header += b" " * (-len(header) % 8)
            data = struct.pack("<Q", len(header)) + header + bytes(16)
            (root / "models" / f"m{index:04d}.safetensors").write_bytes(data)
        else:
            state = {"layer.weight": [0.5] * 8, "step": index}
            (root / "models" / f"m{index:04d}.pkl").write_bytes(pickle.dumps(state, protocol=4))
    git = ["git", "-C", str(root), "-c", "user.name=bench", "-c", "user.email=b@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "models"], check=True)


def timed(args: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    default_dir = Path(tempfile.gettempdir()) / "mlsec-bench-aibom"
    parser.add_argument("--dir", type=Path, default=default_dir)
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", type=int, default=1000, help="small model files (0: skip)")
    parser.add_argument("--skip-large", action="store_true", help="only the --models case")
    args = parser.parse_args()
    if args.models:
        many(args.dir / f"many-{args.models}", args.models, args.repeat)
    if args.skip_large:
        return

    model_dir = args.dir / "repo" / "models" / "bench-model"
    shards = generate(model_dir, args.size_mib)
    for shard in shards:  # warm the page cache for both contenders
        with open(shard, "rb") as handle:
            while handle.read(16 * 1024 * 1024):
                pass

    mlsec = [sys.executable, "-m", "mlsec", "bom", str(args.dir / "repo"), "--offline", "--no-git"]
    scan = [*mlsec[:3], "scan", *mlsec[4:], "--format", "json", "--fail-on", "none"]
    results: dict[str, list[float]] = {"sha256sum": [], "cold": [], "warm": [], "scan": []}
    for _ in range(args.repeat):
        results["sha256sum"].append(timed(["sha256sum", *map(str, shards)])[0])
        cache = Path(tempfile.mkdtemp(prefix="mlsec-bench-cache-"))
        env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(cache)}
        cold, out = timed(mlsec, env)
        results["cold"].append(cold)
        results["warm"].append(timed(mlsec, env)[0])
        results["scan"].append(timed(scan, env)[0])
        shutil.rmtree(cache, ignore_errors=True)
        json.loads(out)  # the BOM is JSON (and was validated before it was written)

    best = {k: min(v) for k, v in results.items()}
    ratio = best["cold"] / best["sha256sum"]
    print(f"weights: {len(shards)} files, {sum(s.stat().st_size for s in shards) / 2**30:.2f} GiB")
    print(f"sha256sum:                 {best['sha256sum']:.2f} s (best of {args.repeat})")
    print(f"mlsec bom, empty cache:    {best['cold']:.2f} s = {ratio:.2f}x sha256sum (target 1.2x)")
    print(f"mlsec bom, warm cache:     {best['warm']:.2f} s (target < 0.5 s)")
    print(f"mlsec scan json, warm:     {best['scan']:.2f} s (start-up and all analyzers)")
    print(f"BOM share of a warm run:   {best['warm'] - best['scan']:.2f} s")
    print("all runs:", json.dumps({k: [round(x, 2) for x in v] for k, v in results.items()}))


def many(root: Path, count: int, repeat: int) -> None:
    generate_many(root, count)
    cache = Path(tempfile.mkdtemp(prefix="mlsec-bench-cache-"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(cache)}
    base = [sys.executable, "-m", "mlsec"]
    bom = [*base, "bom", str(root), "--offline"]
    cdx = [*base, "scan", str(root), "--offline", "--format", "cyclonedx", "--fail-on", "none"]
    scan = [*base, "scan", str(root), "--offline", "--format", "json", "--fail-on", "none"]
    timed(bom, env)  # fills the hash cache and the validation memo
    timed(cdx, env)
    import resource

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    results: dict[str, list[float]] = {"bom": [], "cdx": [], "scan": []}
    cpus: dict[str, list[float]] = {"bom": [], "cdx": [], "scan": []}
    for _ in range(repeat):
        for name, args in (("bom", bom), ("cdx", cdx), ("scan", scan)):
            before = cpu()
            results[name].append(timed(args, env)[0])
            cpus[name].append(cpu() - before)  # CPU time: steadier on a shared machine
    shutil.rmtree(cache, ignore_errors=True)
    best = {k: min(v) for k, v in results.items()}
    low = {k: min(v) for k, v in cpus.items()}
    print(f"{count} small model files in git, warm (best of {repeat}; wall / CPU):")
    print(
        f"  mlsec bom:                     {best['bom']:.2f} s / {low['bom']:.2f} s (target < 1 s)"
    )
    print(f"  mlsec scan --format cyclonedx: {best['cdx']:.2f} s / {low['cdx']:.2f} s")
    print(
        f"  mlsec scan --format json:      {best['scan']:.2f} s / {low['scan']:.2f} s"
        " (the scan's own share)"
    )
    print(f"  BOM share of the warm bom run: {best['bom'] - best['scan']:.2f} s wall")
    print("  all runs:", json.dumps({k: [round(x, 2) for x in v] for k, v in results.items()}))


if __name__ == "__main__":
    main()
