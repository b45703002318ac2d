"""Nothing scanned is ever executed; mutated inputs never crash or hang the analyzer."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickle
import struct
import time
import zipfile
import zlib
from pathlib import Path

import joblib
import lz4.frame
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import Reduce, hits, plain_zip, scan_path, tar_bytes, torch_like_zip


def _payloads(canary: Path) -> dict[str, bytes]:
    """One file per container type; each would create ``canary`` if it were loaded."""
    cmd = f"touch {canary}"
    run = Reduce(os.system, cmd)
    raw = pickle.dumps(run, protocol=4)
    opener = pickle.dumps(Reduce(open, str(canary), "w"), protocol=2)
    nested = pickle.dumps(Reduce(pickle.loads, raw), protocol=4)
    npy = io.BytesIO()
    np.save(npy, np.array([run], dtype=object), allow_pickle=True)
    npz = io.BytesIO()
    np.savez(npz, a=np.array([run], dtype=object))
    jl = io.BytesIO()
    joblib.dump({"x": np.arange(3), "run": run}, jl)
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    legacy = magic + pickle.dumps(1001, 2) + pickle.dumps({}, 2) + pickle.dumps(run, 2)
    return {
        "raw.pkl": raw,
        "open.pkl": opener,
        "nested.pkl": nested,
        "torch.pt": torch_like_zip({"archive/data.pkl": pickle.dumps(run, 2)}),
        "legacy.pt": legacy + pickle.dumps([], 2),
        "legacy_tar.pt": tar_bytes({"pickle": pickle.dumps(run, 2), "sys_info": b"\x80\x02}."}),
        "scripted.pt": torch_like_zip({"ts/constants.pkl": raw}, prefix="ts"),
        "model.joblib": jl.getvalue(),
        "model.joblib.gz": gzip.compress(jl.getvalue(), mtime=0),
        "model.joblib.bz2": bz2.compress(jl.getvalue()),
        "model.joblib.lz4": lz4.frame.compress(jl.getvalue()),
        "model.joblib.xz": lzma.compress(jl.getvalue()),
        "model.joblib.lzma": lzma.compress(jl.getvalue(), format=lzma.FORMAT_ALONE),
        "model.joblib.z": zlib.compress(jl.getvalue()),
        "weights.tar": tar_bytes({"w/model.pkl": raw}),
        "arr.npy": npy.getvalue(),
        "arr.npz": npz.getvalue(),
        "bundle.zip": plain_zip({"a/b.pkl": raw}, zipfile.ZIP_DEFLATED),
        "bundle.tar.gz": tar_bytes({"a/b.pkl": raw}, mode="w:gz"),
    }


def test_canary_never_created(tmp_path: Path, cli) -> None:
    canary = tmp_path / "CANARY-created"
    repo = tmp_path / "repo"
    repo.mkdir()
    payloads = _payloads(canary)
    for name, data in payloads.items():
        (repo / name).write_bytes(data)
    report = scan_path(repo)
    critical = {f.path for f in report.findings if f.rule_id == "MLS101"}
    assert critical == set(payloads), set(payloads) - critical
    proc = cli("scan", repo, "--format", "json")  # and through the real CLI
    assert proc.returncode == 1
    assert not canary.exists()


def _seeds() -> list[bytes]:
    sd = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    jl = io.BytesIO()
    joblib.dump(sd, jl)
    return [
        pickle.dumps({"a": [1, 2.5, "x", b"y"], "b": (None, True)}, protocol=p)
        for p in (0, 2, 4, 5)
    ] + [
        jl.getvalue(),
        torch_like_zip({"archive/data.pkl": pickle.dumps(sd["w"].tolist(), 2)}),
        plain_zip({"m.pkl": pickle.dumps([1, 2], 4)}, zipfile.ZIP_DEFLATED),
    ]


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "int"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[pos:]
        elif op == "int" and len(data) >= pos + 4:
            struct.pack_into("<I", data, pos, draw(st.sampled_from([0, 0xFFFFFFFF, 2**31])))
    return bytes(data)


@settings(
    max_examples=int(os.environ.get("MLSEC_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=mutated())
def test_fuzz_no_crash_and_bounded(tmp_path: Path, data: bytes) -> None:
    repo = tmp_path / "fuzz"
    repo.mkdir(exist_ok=True)
    for old in repo.iterdir():
        old.unlink()
    (repo / "model.pt").write_bytes(data)
    start = time.perf_counter()
    report = scan_path(repo)
    assert time.perf_counter() - start < 10
    assert not report.errors, report.errors
    assert all(f.rule_id.startswith("MLS") for f in report.findings)
    hits(report)
