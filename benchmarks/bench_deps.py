"""Benchmark: offline audit of a 500-package lock file against the full PyPA advisory database.

Generates ``uv.lock`` with 500 packages under a temporary directory (package names taken from
the database's own folders, so every package has advisories to match: the worst case; versions
taken from the records so that many of them are vulnerable), then times the whole process
``python -m mlsec scan DIR --offline --vuln-db DB --format json`` three ways:

* cold: empty cache, the compact index is built from the YAML records (parallel parse);
* warm: the index cached by the previous run is reused (the normal case after the first scan);
* a typical lock file (only 60 of the 500 packages have advisories), cold;
* the same database converted to an osv.dev-style ``all.zip`` of JSON records (the format
  ``mlsec db update`` downloads; its index is normally built by ``db update`` itself), cold
  and warm.

Target: under 2 s whole-process. Run from the repository root:

    /work/venv/bin/python benchmarks/bench_deps.py [--db PATH] [--packages 500]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DB = Path("/work/shared/data/pypa-advisory-db")


def _versions_for(folder: Path) -> str:
    """A version listed by one of the package's records (else 0.0.1)."""
    for record in sorted(folder.glob("*.yaml")):
        for line in record.read_text(encoding="utf-8", errors="replace").splitlines():
            stripped = line.strip()
            if stripped.startswith("- ") and stripped[2:3].isdigit():
                return stripped[2:].strip().strip("'\"")
    return "0.0.1"


def write_lock(directory: Path, db: Path, count: int, known: int | None = None) -> None:
    """uv.lock with ``count`` packages, ``known`` of them (default: as many as possible)
    named after the database's package folders."""
    folders = sorted(p for p in (db / "vulns").iterdir() if p.is_dir())[: known or count]
    names = [f.name for f in folders]
    while len(names) < count:  # pad with names the database does not know
        names.append(f"benchmark-package-{len(names)}")
    lines = ["version = 1", 'requires-python = ">=3.10"', ""]
    lines += ["[[package]]", 'name = "bench-project"', 'version = "0.1.0"']
    lines += ['source = { editable = "." }', "dependencies = ["]
    lines += [f'    {{ name = "{n}" }},' for n in names] + ["]", ""]
    for index, name in enumerate(names):
        version = _versions_for(folders[index]) if index < len(folders) else "1.0.0"
        lines += ["[[package]]", f'name = "{name}"', f'version = "{version}"']
        lines += ['source = { registry = "https://pypi.org/simple" }', ""]
    (directory / "uv.lock").write_text("\n".join(lines), encoding="utf-8")


def write_export(db: Path, target: Path) -> None:
    """The YAML records as an osv.dev-style all.zip of JSON (conversion is not timed)."""
    import zipfile

    import yaml

    # BaseLoader: every scalar stays a string (an unquoted 1.10 must not become 1.1)
    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(db.glob("vulns/*/*.yaml")):
            doc = yaml.load(path.read_bytes(), Loader=loader)
            archive.writestr(f"{path.stem}.json", json.dumps(doc, default=str))


CPU: list[float] = []  # user+system seconds of each scan process, beside its wall time


def run_scan(directory: Path, db: Path, cache: Path) -> tuple[float, dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(cache)}
    command = [sys.executable, "-m", "mlsec", "scan", str(directory), "--offline"]
    command += ["--vuln-db", str(db), "--format", "json", "--no-git", "--fail-on", "none"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"scan failed ({proc.returncode}): {proc.stderr}")
    return elapsed, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=DEFAULT_DB)
    parser.add_argument("--packages", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    records = sum(1 for _ in args.db.glob("vulns/*/*.yaml"))
    with tempfile.TemporaryDirectory(prefix="mlsec-bench-deps-") as tmp:
        work = Path(tmp)
        (work / "repo").mkdir()
        write_lock(work / "repo", args.db, args.packages)
        cache = work / "cache"
        cold, report = run_scan(work / "repo", args.db, cache)
        warm = [run_scan(work / "repo", args.db, cache)[0] for _ in range(args.repeat)]
        export = work / "all.zip"
        write_export(args.db, export)
        zip_cold, zip_report = run_scan(work / "repo", export, work / "cache-zip")
        zip_warm = [run_scan(work / "repo", export, work / "cache-zip")[0] for _ in range(3)]
        (work / "typical").mkdir()
        write_lock(work / "typical", args.db, args.packages, known=60)
        typical_cold, _ = run_scan(work / "typical", args.db, work / "cache-typical")
    findings = report["findings"]
    assert isinstance(findings, list)
    vulnerable = sum(1 for f in findings if str(f["rule_id"]) < "MLS210")
    zip_findings = zip_report["findings"]
    assert isinstance(zip_findings, list)
    zip_vulnerable = sum(1 for f in zip_findings if str(f["rule_id"]) < "MLS210")
    assert zip_vulnerable == vulnerable, "zip and YAML databases disagree"
    print(f"database: {args.db} ({records} YAML records)")
    print(f"lock file: uv.lock with {args.packages} packages; {vulnerable} vulnerable findings")
    n = args.repeat
    cpu_warm, cpu_zip_warm = CPU[1 : 1 + n], CPU[2 + n : -1]
    print(f"YAML directory, cold (index built):  {cold:.2f} s wall, {CPU[0]:.2f} s CPU")
    print(f"YAML directory, warm (index cached): wall {_spread(warm)}")
    print(f"                                     CPU  {_spread(cpu_warm)}")
    print(f"all.zip export, cold (index built):  {zip_cold:.2f} s wall, {CPU[1 + n]:.2f} s CPU")
    print(f"all.zip export, warm (index cached): wall {_spread(zip_warm)}")
    print(f"                                     CPU  {_spread(cpu_zip_warm)}")
    print(
        f"typical lock (60 of {args.packages} packages in the database), YAML directory, cold: "
        f"{typical_cold:.2f} s wall, {CPU[-1]:.2f} s CPU"
    )
    print(f"target < 2 s with the index cached: {'met' if max(warm + zip_warm) < 2 else 'NOT met'}")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def _spread(times: list[float]) -> str:
    return (
        f"median {statistics.median(times):.2f} s, min {min(times):.2f} s, "
        f"max {max(times):.2f} s over {len(times)} runs"
    )


if __name__ == "__main__":
    main()
