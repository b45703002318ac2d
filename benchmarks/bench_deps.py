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
  and warm;
* 30,000 pins (``--pins``) in one requirements file: every (package, version) the records
  name (listed, introduced and fixed versions: every range boundary), padded with packages
  the database does not know; index cached; JSON and SARIF output. Peak memory is the scan
  process's maximum resident set size.

Targets: the 500-package lock under 2 s whole-process with the index cached; 30,000 pins
under 10 s and 500 MB. Run from the repository root:

    python benchmarks/bench_deps.py [--db PATH] [--packages 500] [--pins 30000]
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


def write_pins(directory: Path, db: Path, count: int) -> int:
    """requirements.txt with ``count`` pins: every version the records name, then padding.
    Returns how many pins name a package version from the records."""
    import yaml

    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
    seen: dict[tuple[str, str], None] = {}
    for path in sorted(db.glob("vulns/*/*.yaml")):
        doc = yaml.load(path.read_bytes(), Loader=loader)
        for affected in doc.get("affected") or []:
            name = affected["package"]["name"]
            named = list(affected.get("versions") or [])
            for rng in affected.get("ranges") or []:
                for event in rng.get("events") or []:
                    named.extend(v for v in event.values() if v != "0")
            for version in named:
                seen.setdefault((name, version), None)
    pins = [f"{name}=={version}" for name, version in seen][:count]
    known = len(pins)
    pins += [f"bench-unknown-{i}==1.0" for i in range(count - known)]
    (directory / "requirements.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
    return known


CPU: list[float] = []  # user+system seconds of each scan process, beside its wall time
PEAK: list[float] = []  # the scan process's maximum resident set size, MB
# Runs one command and reports its own child's peak memory (RUSAGE_CHILDREN is a maximum over
# every child ever waited for, so each scan gets a fresh parent).
_MEASURE = (
    "import resource, subprocess, sys; "
    "p = subprocess.run(sys.argv[1:]); "
    "sys.stderr.write(f'\\nMAXRSS {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n'); "
    "sys.exit(p.returncode)"
)


def run_scan(
    directory: Path, db: Path, cache: Path, output: str = "json"
) -> tuple[float, dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(cache)}
    command = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "mlsec", "scan"]
    command += [str(directory), "--offline", "--vuln-db", str(db), "--format", output]
    command += ["--no-git", "--fail-on", "none"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"scan failed ({proc.returncode}): {proc.stderr}")
    peak = [line for line in proc.stderr.splitlines() if line.startswith("MAXRSS ")]
    PEAK.append(int(peak[-1].split()[1]) / 1024 if peak else float("nan"))
    return elapsed, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=DEFAULT_DB)
    parser.add_argument("--packages", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pins", type=int, default=30_000)
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
        first_runs = list(CPU)
        (work / "pins").mkdir()
        known = write_pins(work / "pins", args.db, args.pins)
        run_scan(work / "pins", args.db, cache)  # the index of every package, cached
        pins = [run_scan(work / "pins", args.db, cache) for _ in range(3)]
        pins_cpu, pins_peak = CPU[-3:], PEAK[-3:]
        pins_sarif = [run_scan(work / "pins", args.db, cache, "sarif")[0] for _ in range(3)]
        sarif_cpu, sarif_peak = CPU[-3:], PEAK[-3:]
    pins_report = pins[-1][1]
    pins_findings = pins_report["findings"]
    assert isinstance(pins_findings, list)
    pins_vulnerable = sum(1 for f in pins_findings if str(f["rule_id"]) < "MLS206")
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
    cpu_warm, cpu_zip_warm = first_runs[1 : 1 + n], first_runs[2 + n : -1]
    print(f"YAML directory, cold (index built):  {cold:.2f} s wall, {first_runs[0]:.2f} s CPU")
    print(f"YAML directory, warm (index cached): wall {_spread(warm)}")
    print(f"                                     CPU  {_spread(cpu_warm)}")
    print(
        f"all.zip export, cold (index built):  {zip_cold:.2f} s wall, {first_runs[1 + n]:.2f} s CPU"
    )
    print(f"all.zip export, warm (index cached): wall {_spread(zip_warm)}")
    print(f"                                     CPU  {_spread(cpu_zip_warm)}")
    print(
        f"typical lock (60 of {args.packages} packages in the database), YAML directory, cold: "
        f"{typical_cold:.2f} s wall, {first_runs[-1]:.2f} s CPU"
    )
    print(f"target < 2 s with the index cached: {'met' if max(warm + zip_warm) < 2 else 'NOT met'}")
    print(
        f"{args.pins} pins ({known} named by the records), {pins_vulnerable} vulnerable "
        "findings, index cached:"
    )
    print(f"  JSON:  wall {_spread([t for t, _ in pins])}")
    print(f"         CPU  {_spread(pins_cpu)}; peak {max(pins_peak):.0f} MB")
    print(f"  SARIF: wall {_spread(pins_sarif)}")
    print(f"         CPU  {_spread(sarif_cpu)}; peak {max(sarif_peak):.0f} MB")
    ok = statistics.median(pins_cpu) < 10 and max(pins_peak) < 500
    print(f"target < 10 s and < 500 MB (JSON, CPU time): {'met' if ok else 'NOT met'}")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def _spread(times: list[float]) -> str:
    return (
        f"median {statistics.median(times):.2f} s, min {min(times):.2f} s, "
        f"max {max(times):.2f} s over {len(times)} runs"
    )


if __name__ == "__main__":
    main()
