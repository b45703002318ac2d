"""libhdf5 and modelscan run in a bounded worker: a hang, a blow-up or a crash is a finding
for that file, the report is written, and Ctrl-C still ends the scan with exit 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlsec import native
from tests.conftest import REPO
from tests.failclosed.helpers import evil_pickle, findings_of

# The real CLI entry point, with the worker's Keras call replaced by one that hangs (a libhdf5
# stuck in C looks the same from outside: a worker that never answers).
_HANGING_H5 = (
    "import sys, mlsec.native as n\n"
    "real = n.call\n"
    "def call(name, args, *, timeout):\n"
    "    if name == 'keras_h5':\n"
    "        return real('sleep', {'seconds': 600}, timeout=timeout)\n"
    "    return real(name, args, timeout=timeout)\n"
    "n.call = call\n"
    "sys.argv[0] = 'mlsec'\n"
    "from mlsec.cli import main\n"
    "main()\n"
)


def _keras_h5(path: Path) -> None:
    sys.path.insert(0, str(REPO / "fixtures"))
    try:
        from generate_formats import keras2_config, write_keras_h5
    finally:
        sys.path.pop(0)
    write_keras_h5(path, keras2_config())


def _repo(tmp_path: Path, timeout: float) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _keras_h5(repo / "model.h5")
    (repo / "evil.pkl").write_bytes(evil_pickle())
    (repo / ".mlsec.toml").write_text(f"[limits]\nfile-timeout-seconds = {timeout}\n")
    return repo


def _run_hanging(*args: str | os.PathLike[str], **kw: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", _HANGING_H5, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kw,  # type: ignore[call-overload]
    )


def test_hanging_hdf5_is_a_finding_and_the_report_is_written(tmp_path: Path) -> None:
    repo = _repo(tmp_path, timeout=1.5)
    output = tmp_path / "report.json"
    start = time.monotonic()
    proc = _run_hanging("scan", repo, "--format", "json", "--output", output)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert time.monotonic() - start < 60
    found = findings_of(output.read_text())
    assert ("MLS904", "medium", "model.h5") in found
    assert ("MLS101", "critical", "evil.pkl") in found
    [hung] = [f for f in json.loads(output.read_text())["findings"] if f["path"] == "model.h5"]
    assert "did not finish within 1.5 s" in hung["message"]


def _hanging_hdf5(path: Path) -> None:
    """A Keras HDF5 file with one byte changed that keeps libhdf5 busy for ever.

    Built from the benign fixture generator at test time: the low byte of the length recorded
    just before the ``model_config`` attribute's JSON goes from 0x68 to 0xE6 (found by
    mutating that file; h5py 3.x then never returns from reading the attributes).
    """
    _keras_h5(path)
    data = bytearray(path.read_bytes())
    offset = data.index(b'{"class_name"') - 8
    assert data[offset : offset + 8] == bytes([0x68, 0x01, 0, 0, 0, 0, 0, 0])
    data[offset] = 0xE6
    path.write_bytes(bytes(data))


def test_real_hanging_hdf5_is_a_finding_through_the_cli(tmp_path: Path, cli) -> None:
    repo = _repo(tmp_path, timeout=3)
    _hanging_hdf5(repo / "model.h5")
    start = time.monotonic()
    proc = cli("scan", repo, "--format", "json", timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - start < 60
    found = findings_of(proc.stdout)
    assert ("MLS904", "medium", "model.h5") in found
    assert ("MLS101", "critical", "evil.pkl") in found


def test_ctrl_c_during_a_hanging_parser_exits_130(tmp_path: Path) -> None:
    repo = _repo(tmp_path, timeout=600)
    proc = _run_hanging("scan", repo, "--format", "json")
    time.sleep(4)  # the scan is now waiting on the hanging worker
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err


def test_benign_keras_h5_is_read_in_the_worker(tmp_path: Path, cli) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _keras_h5(repo / "model.h5")
    proc = cli("scan", repo, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["findings"] == []


def test_worker_timeout_memory_and_crash_are_failures_then_it_recovers() -> None:
    with pytest.raises(native.NativeFailure) as hung:
        native.call("sleep", {"seconds": 30}, timeout=0.5)
    assert (hung.value.rule_id, hung.value.key) == ("MLS904", "timeout")
    with pytest.raises(native.NativeFailure) as big:
        native.call("allocate", {"bytes": 8 * 1024**3}, timeout=30)
    assert (big.value.rule_id, big.value.key) == ("MLS904", "memory")
    with pytest.raises(native.NativeFailure) as crashed:
        native.call("crash", {}, timeout=30)
    assert (crashed.value.rule_id, crashed.value.key) == ("MLS901", "crash")
    assert "signal 6" in str(crashed.value)
    assert native.call("allocate", {"bytes": 1024}, timeout=30) == 1024  # a fresh worker


def test_worker_is_reused_across_files() -> None:
    native.call("allocate", {"bytes": 1}, timeout=30)
    first = native._WORKER._proc
    for _ in range(20):
        native.call("allocate", {"bytes": 1}, timeout=30)
    assert native._WORKER._proc is first and first is not None and first.poll() is None


def test_unknown_call_is_refused_by_the_worker() -> None:
    with pytest.raises(native.NativeFailure, match="KeyError"):
        native.call("os.system", {}, timeout=30)


def test_modelscan_hang_is_a_notice_for_that_file(tmp_path: Path, monkeypatch) -> None:
    from mlsec.config import Limits, ScanOptions
    from mlsec.scan import scan

    (tmp_path / "evil.pkl").write_bytes(evil_pickle())
    real = native.call

    def hang(name: str, args: dict[str, object], *, timeout: float) -> object:
        if name == "modelscan":
            return real("sleep", {"seconds": 60}, timeout=timeout)
        return real(name, args, timeout=timeout)

    monkeypatch.setattr(native, "call", hang)
    options = ScanOptions(
        path=tmp_path,
        limits=Limits(file_timeout_seconds=1.0),
        sections={"models": {"modelscan": "always"}},  # mlsec read it fully: not asked on auto
    )
    report = scan(options)
    found = {(f.rule_id, f.severity.value, f.path, f.source) for f in report.findings}
    assert ("MLS194", "low", "evil.pkl", "modelscan") in found
    assert ("MLS101", "critical", "evil.pkl", "mlsec") in found
