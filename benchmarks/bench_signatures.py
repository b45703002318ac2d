"""Benchmark: verifying a signed 2 GiB model folder versus sha256sum over the same files.

Generates a model folder (4 x 512 MiB shards of pseudo-random bytes, a config and a
tokenizer) under benchmarks/.work/, signs it with `mlsec sign` (a throwaway EC key), then
times, each as a whole process and best of N runs with a warm page cache:

1. ``sha256sum`` over the model files (the floor: hashing is unavoidable);
2. verification alone: a process that runs the scan with only the signatures analyzer;
3. the full ``mlsec scan`` command (every analyzer, JSON output).

Target: (2) <= 1.2 x (1). Usage (from the repository root):

    PYTHONPATH=. python benchmarks/bench_signatures.py [--size-mib 2048] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "benchmarks" / ".work" / "signatures"

VERIFY = """
import sys
from pathlib import Path
from mlsec.config import build_options
from mlsec.scan import scan
report = scan(
    build_options(Path(sys.argv[1]), offline=True, use_git=False),
    analyzers=("mlsec.analyzers.signatures:SignaturesAnalyzer",),
)
assert not report.findings, report.findings
(fact,) = report.facts["signatures"].signatures
assert fact.verified, fact
"""


def generate(size_mib: int) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from mlsec.signatures.sign import sign_model

    root = WORK / f"repo-{size_mib}"
    model = root / "model"
    marker = root / ".complete"
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        model.mkdir(parents=True)
        shard_mib = size_mib // 4
        rng = random.Random(0)
        block = rng.randbytes(4 * 1024 * 1024)
        for i in range(4):
            with open(model / f"model-{i + 1:05d}-of-00004.safetensors", "wb") as out:
                for j in range(shard_mib // 4):
                    # vary each block so that no two blocks are equal
                    out.write(j.to_bytes(8, "little") + i.to_bytes(8, "little") + block[16:])
        (model / "config.json").write_text('{"hidden_size": 4096}')
        (model / "tokenizer.json").write_text('{"vocab": {}}' * 1000)
        key = ec.generate_private_key(ec.SECP256R1())
        (root / "key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (root / "key.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        (root / ".mlsec.toml").write_text(
            'offline = true\n[signatures]\nrequired = ["model/**"]\n'
            '[[signatures.signers]]\npublic-key = "key.pub"\n'
        )
        sign_model(model, key=root / "key.pem")
        marker.write_text("ok")
    return root


def best(command: list[str], runs: int, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Best wall time and best CPU time (user+sys) of ``runs`` runs of ``command``."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return min(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the generated model")
    args = parser.parse_args()

    root = generate(args.size_mib)
    model = root / "model"
    files = sorted(str(p) for p in model.iterdir() if p.name != "model.sig")
    total = sum(os.path.getsize(f) for f in files)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(["cat", *files], check=True, stdout=subprocess.DEVNULL)  # warm the cache

    sha, sha_cpu = best(["sha256sum", *files], args.runs)
    verify, verify_cpu = best([sys.executable, "-c", VERIFY, str(root)], args.runs, env)
    full, full_cpu = best(
        [sys.executable, "-m", "mlsec", "scan", str(root), "--format", "json", "--no-git"],
        args.runs,
        env,
    )
    gib = total / 1024**3
    print(f"model: {len(files)} files, {gib:.2f} GiB, {os.cpu_count()} CPU(s), best of {args.runs}")
    print("                                       wall          cpu    wall ratio")
    print(f"sha256sum (whole process)          {sha:7.2f} s  {sha_cpu:7.2f} s")
    print(
        f"mlsec verify (signatures analyzer) {verify:7.2f} s  {verify_cpu:7.2f} s"
        f"    {verify / sha:.2f}x (target <= 1.20x)"
    )
    print(
        f"mlsec scan (all analyzers, CLI)    {full:7.2f} s  {full_cpu:7.2f} s    {full / sha:.2f}x"
    )
    if shutil.which("openssl"):  # a faster floor than coreutils, for reference
        ossl, ossl_cpu = best(["openssl", "dgst", "-sha256", *files], args.runs)
        print(
            f"openssl dgst -sha256 (reference)   {ossl:7.2f} s  {ossl_cpu:7.2f} s"
            f"    verify/openssl {verify / ossl:.2f}x"
        )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
