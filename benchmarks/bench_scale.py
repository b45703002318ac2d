"""mlsec at repository scale, side by side with the peers and the physical floors.

One command for every figure of the speed issue. It generates seeded repositories (once,
cached under benchmarks/.work/scale, git-ignored), then runs each command of a case
round-robin (so all see the same machine load) and prints, per command: median wall time,
median CPU time (user + system of the process tree), peak memory of the process tree (RSS of
the process and all its children, summed, sampled every 10 ms) and the ratio to the case's
reference.

Cases (``--cases`` selects some; ``--scale`` shrinks the big ones for a quick look):
  one-pickle      a 2 KiB pickle: start-up              vs picklescan
  small-models    1,000 small model files               vs picklescan, modelscan
  source-files    100,000 small source files in git     vs `git ls-files | xargs cat`
  weights-hash    4 GiB in 8 weight files, BOM hashing  vs `openssl dgst -sha256`, 2 in parallel
                  (cold: empty mlsec cache; warm: nothing changed)
  bom-warm        `mlsec bom` of 1,000 model files, warm cache
  many-objects    a 4 GiB pickle of 5 M small objects   (analysed to its end?)

mlsec's own result cache would turn every run after the first into a re-scan of an unchanged
tree, so side-by-side lines run mlsec with ``--no-cache`` (and once with ``--jobs 1``), and the
re-scan is a line of its own, "(warm, nothing changed)", with a cache filled by an untimed run.

Usage: python benchmarks/bench_scale.py [--runs 5] [--cases a,b] [--scale 1.0] [--work DIR]
picklescan and modelscan are looked up next to this Python (pip install picklescan); a
missing tool is left out of its case. Needs psutil for the process-tree memory figure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SEED = 20261201


class Measure(NamedTuple):
    wall: float
    cpu: float
    peak: int
    code: int


def _tree_rss(proc: object) -> int:
    import psutil

    assert isinstance(proc, psutil.Process)
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_once(cmd: str | list[str], env: dict[str, str] | None = None) -> Measure:
    """Wall, CPU (tree) and peak summed RSS (tree) of one command (a list, or a shell line)."""
    import psutil

    full_env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", **(env or {})}
    before = os.times()
    start = time.perf_counter()
    child = subprocess.Popen(
        cmd,
        shell=isinstance(cmd, str),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=full_env,
        cwd=REPO,
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            proc = psutil.Process(child.pid)
        except psutil.Error:
            return
        while not done.is_set():
            peak = max(peak, _tree_rss(proc))
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = child.wait()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return Measure(wall, cpu, peak, code)


# -- generators (deterministic: seeded, no clock) ---------------------------------------------
def _small_model_pickle(rng: random.Random, index: int) -> bytes:
    """A small state-dict-like pickle of plain Python data and NumPy-free globals."""
    import collections

    state = collections.OrderedDict(
        (f"layer{j}.weight", [rng.random() for _ in range(64)]) for j in range(8)
    )
    return pickle.dumps({"epoch": index, "state_dict": state}, protocol=4)


def make_one_pickle(folder: Path, scale: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.pkl"
    rng = random.Random(SEED)
    # about 2 KiB: 220 floats of 9 bytes each, plus the framing
    path.write_bytes(pickle.dumps({"weights": [rng.random() for _ in range(220)]}, protocol=4))
    return path


def make_small_models(folder: Path, scale: float) -> Path:
    rng = random.Random(SEED)
    count = max(10, int(1000 * scale))
    for i in range(count):
        sub = folder / f"m{i // 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"model_{i:04d}.pkl").write_bytes(_small_model_pickle(rng, i))
    return folder


def _git_init(folder: Path) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
        "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    }
    subprocess.run(["git", "init", "-q", str(folder)], check=True, env=env)
    subprocess.run(["git", "-C", str(folder), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(folder), "commit", "-q", "-m", "bench"], check=True, env=env)


def make_source_files(folder: Path, scale: float) -> Path:
    rng = random.Random(SEED)
    count = max(100, int(100_000 * scale))
    for i in range(count):
        sub = folder / f"pkg{i // 1000:03d}" / f"mod{(i // 100) % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        body = "".join(f"value_{j} = {rng.randint(0, 10**6)}\n" for j in range(rng.randint(5, 40)))
        (sub / f"file_{i:06d}.py").write_text(f'"""Module {i}."""\n{body}', encoding="utf-8")
    _git_init(folder)
    return folder


def _write_random(path: Path, size: int, rng: random.Random) -> None:
    block = rng.randbytes(1 << 20)
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            n = min(len(block), size - written)
            handle.write(block[:n])
            written += n
            block = block[1:] + block[:1]  # not all blocks equal (no dedup in any layer)


def make_weights(folder: Path, scale: float) -> Path:
    """8 safetensors files of 512 MiB each (one F32 tensor of random bytes)."""
    rng = random.Random(SEED)
    folder.mkdir(parents=True, exist_ok=True)
    per_file = max(1 << 20, int(512 * 1024**2 * scale)) // 4 * 4
    for i in range(8):
        header = (
            f'{{"w":{{"dtype":"F32","shape":[{per_file // 4}],"data_offsets":[0,{per_file}]}}}}'
        ).encode()
        header += b" " * (-len(header) % 8)
        path = folder / f"model-{i + 1:05d}-of-00008.safetensors"
        with open(path, "wb") as handle:
            handle.write(struct.pack("<Q", len(header)) + header)
        tmp = path.with_suffix(".raw")
        _write_random(tmp, per_file, rng)
        with open(path, "ab") as out, open(tmp, "rb") as raw:
            shutil.copyfileobj(raw, out, 1 << 22)
        tmp.unlink()
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# bench model\n")
    return folder


def make_many_objects(folder: Path, scale: float) -> Path:
    """A protocol-4 pickle of a list of 5 M small dicts, written as the pickler writes it
    (every string and dict memoized), ~800 bytes per object: about 4 GiB."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "objects.pkl"
    count = max(1000, int(5_000_000 * scale))
    text = ("x" * 740).encode()
    with open(path, "wb") as out:
        out.write(b"\x80\x04\x95" + struct.pack("<Q", 2) + b"]\x94")  # PROTO FRAME EMPTY_LIST
        out.write(b"(")  # MARK
        chunk = bytearray()
        for i in range(count):
            chunk += b"}\x94("  # EMPTY_DICT MEMOIZE MARK
            chunk += b"\x8c\x02id\x94J" + struct.pack("<i", i)
            chunk += b"\x8c\x04name\x94X" + struct.pack("<I", len(text)) + text + b"\x94"
            chunk += b"\x8c\x05score\x94G" + struct.pack(">d", i / 7)
            chunk += b"u"  # SETITEMS
            if i % 1000 == 999:
                chunk += b"e("  # APPENDS MARK
            if len(chunk) > 1 << 22:
                out.write(chunk)
                chunk.clear()
        chunk += b"e."  # APPENDS STOP
        out.write(chunk)
    return path


GENERATORS: dict[str, Callable[[Path, float], Path]] = {
    "one-pickle": make_one_pickle,
    "small-models": make_small_models,
    "source-files": make_source_files,
    "weights-hash": make_weights,
    "bom-warm": make_small_models,
    "many-objects": make_many_objects,
}


def prepared(work: Path, case: str, scale: float) -> Path:
    folder = work / f"{case}-{scale:g}"
    marker = folder / ".generated"
    if case == "bom-warm":
        return prepared(work, "small-models", scale)
    if not marker.exists():
        if folder.exists():
            shutil.rmtree(folder)
        print(f"generating {case} under {folder} ...", file=sys.stderr)
        target = GENERATORS[case](folder / "repo", scale)
        marker.write_text(str(target))
    return Path(marker.read_text())


def mlsec(*args: str) -> list[str]:
    return [str(BIN / "mlsec"), *args]


def peer(name: str, *args: str) -> list[str] | None:
    exe = BIN / name
    if not exe.exists():
        found = shutil.which(name)
        if found is None:
            return None
        exe = Path(found)
    return [str(exe), *args]


class Command(NamedTuple):
    label: str
    cmd: str | list[str]
    env: dict[str, str] | None = None
    prepare: Callable[[], None] | None = None  # run (untimed) before each timed run


def scan_json(target: Path) -> tuple[str, ...]:
    return ("scan", str(target), "--format", "json")


def warm(case: str, args: tuple[str, ...], cache: Path) -> Command:
    """The same scan with a result cache filled by one untimed run: nothing changed."""
    env = {"XDG_CACHE_HOME": str(cache / f"{case}-warm")}
    subprocess.run(mlsec(*args), env={**os.environ, **env}, capture_output=True)
    return Command("mlsec scan (warm, nothing changed)", mlsec(*args), env)


def commands_for(case: str, target: Path, cache: Path) -> list[Command]:
    out: list[Command] = []
    # mlsec's result cache would make every run after the first a re-scan of an unchanged
    # tree: "--no-cache" is the honest side-by-side figure, "(warm)" the re-scan.
    if case in ("one-pickle", "small-models"):
        out.append(Command("mlsec scan --no-cache", mlsec(*scan_json(target), "--no-cache")))
        ps = peer("picklescan", "-p", str(target))
        if ps:
            out.append(Command("picklescan", ps))
        if case == "small-models":
            ms = peer("modelscan", "-p", str(target))
            if ms:
                out.append(Command("modelscan", ms))
            out.append(
                Command(
                    "mlsec scan --jobs 1 --no-cache", mlsec(*scan_json(target), "-j1", "--no-cache")
                )
            )
            out.append(warm(case, scan_json(target), cache))
    elif case == "source-files":
        out.append(Command("mlsec scan --no-cache", mlsec(*scan_json(target), "--no-cache")))
        out.append(
            Command(
                "git ls-files | xargs cat",
                f"cd '{target}' && git ls-files -z | xargs -0 cat > /dev/null",
            )
        )
        out.append(warm(case, scan_json(target), cache))
    elif case == "weights-hash":
        cold = cache / "cold"

        def wipe() -> None:
            shutil.rmtree(cold, ignore_errors=True)

        cold_env = {"XDG_CACHE_HOME": str(cold)}
        warm_env = {"XDG_CACHE_HOME": str(cache / "warm")}
        bom = ("scan", str(target), "--format", "cyclonedx")
        out.append(Command("mlsec scan -f cyclonedx (cold)", mlsec(*bom), cold_env, wipe))
        files = sorted(str(p) for p in target.glob("*.safetensors"))
        half = len(files) // 2
        out.append(
            Command(
                "openssl dgst -sha256, 2 in parallel",
                f"openssl dgst -sha256 {' '.join(files[:half])} > /dev/null & "
                f"openssl dgst -sha256 {' '.join(files[half:])} > /dev/null; wait",
            )
        )
        subprocess.run(mlsec(*bom), env={**os.environ, **warm_env}, capture_output=True)
        out.append(Command("mlsec scan -f cyclonedx (warm)", mlsec(*bom), warm_env))
    elif case == "bom-warm":
        warm_env = {"XDG_CACHE_HOME": str(cache / "bom-warm")}
        subprocess.run(
            mlsec("bom", str(target)), env={**os.environ, **warm_env}, capture_output=True
        )
        out.append(Command("mlsec bom (warm)", mlsec("bom", str(target)), warm_env))
        out.append(
            Command("mlsec scan --no-cache (reference)", mlsec(*scan_json(target), "--no-cache"))
        )
    elif case == "many-objects":
        out.append(Command("mlsec scan --no-cache", mlsec(*scan_json(target), "--no-cache")))
        out.append(Command("cat (floor)", f"cat '{target}' > /dev/null"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cases", default=",".join(GENERATORS))
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / ".work" / "scale")
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(GENERATORS))
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(GENERATORS)}")
    args.work.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "mlsec")], check=True)
    print(
        f"{'case':13} {'command':36} {'median s':>9} {'cpu s':>7} {'cpu %':>6}"
        f" {'peak MiB':>9} {'ratio':>6} rc"
    )
    with tempfile.TemporaryDirectory(prefix="mlsec-bench-cache-") as cache_dir:
        cache = Path(cache_dir)
        for case in cases:
            target = prepared(args.work, case, args.scale)
            commands = commands_for(case, target, cache)
            results: dict[str, list[Measure]] = {c.label: [] for c in commands}
            for _ in range(args.runs):
                for command in commands:
                    if command.prepare is not None:
                        command.prepare()
                    results[command.label].append(run_once(command.cmd, command.env))
            # Ratios are to the case's second command: the peer or the floor.
            walls = {c.label: statistics.median(m.wall for m in results[c.label]) for c in commands}
            reference = walls[commands[1].label] if len(commands) > 1 else None
            for command in commands:
                ms = results[command.label]
                wall = walls[command.label]
                cpu = statistics.median(m.cpu for m in ms)
                peak = max(m.peak for m in ms)
                codes = ",".join(str(c) for c in sorted({m.code for m in ms}))
                ratio = f"{wall / reference:6.2f}" if reference else ""
                print(
                    f"{case:13} {command.label:36} {wall:9.3f} {cpu:7.3f}"
                    f" {100 * cpu / wall if wall else 0:6.0f} {peak / 1024**2:9.1f}"
                    f" {ratio:>6} {codes}"
                )


if __name__ == "__main__":
    main()
