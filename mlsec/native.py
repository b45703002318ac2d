"""Native parsers (libhdf5 through h5py, the modelscan second opinion) in a bounded worker.

A crafted HDF5 file can hang libhdf5 in C code (no Python timeout applies, Ctrl-C is not
seen) or make it allocate gigabytes; modelscan reads whole files into memory. So they run in
a separate process, ``python -m mlsec.native``, started once and reused for every file:

- its address space is capped (``RLIMIT_AS``, :data:`MEMORY_LIMIT_BYTES`), so a blow-up is a
  ``MemoryError`` or a crash of the worker, not of the scan;
- every call has a deadline (``limits.file-timeout-seconds``); past it the worker is killed
  and the next call starts a new one;
- the scan waits in ``select``, so Ctrl-C reaches it at any time (exit 130) and the worker is
  killed on the way out; the worker keeps the default SIGINT action (it dies too).

Requests and answers are JSON lines on the worker's stdin/stdout, never pickles: a worker
subverted by a hostile file could otherwise send the scan code to run. Only the calls in
:data:`_CALLS` (the worker's side) exist. A failure raises :class:`NativeFailure`, a
:class:`~mlsec.formats.FormatError` carrying the rule to report (MLS904 for a time or memory
limit, MLS901 for a crash) so the caller turns it into a finding for that file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from mlsec.formats import FormatError

MEMORY_LIMIT_BYTES = 2 * 1024**3
# Reading a Keras HDF5 file's root attributes takes milliseconds; a file that keeps libhdf5
# busy for this long is stuck (crafted B-trees loop forever), whatever the per-file limit.
H5_TIMEOUT_SECONDS = 30.0
MAX_ANSWER_BYTES = 256 * 1024 * 1024
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


class NativeFailure(FormatError):
    """A native parser hung, ran out of memory or crashed on one file."""

    def __init__(self, message: str, *, rule_id: str, key: str) -> None:
        super().__init__(message)
        self.rule_id = rule_id  # MLS904 (time or memory limit) or MLS901 (crash)
        self.key = key  # "timeout", "memory", "crash"


class _Worker:
    """One worker process, started on first use and after each failure."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (_PACKAGE_PARENT, os.environ.get("PYTHONPATH", "")) if p
            ),
            # One thread per numeric library: their per-thread buffers count against RLIMIT_AS.
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MLSEC_NATIVE_MEMORY": str(MEMORY_LIMIT_BYTES),
        }
        return subprocess.Popen(
            [sys.executable, "-m", "mlsec.native"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def call(self, name: str, args: Mapping[str, Any], timeout: float) -> Any:
        with self._lock:
            try:
                return self._call(name, args, timeout)
            except NativeFailure:
                self.stop()
                raise
            except BaseException:  # Ctrl-C, or a bug here: never leave a worker behind
                self.stop()
                raise

    def _call(self, name: str, args: Mapping[str, Any], timeout: float) -> Any:
        if self._proc is None or self._proc.poll() is not None:
            self.stop()
            self._proc = self._start()
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        request = json.dumps({"call": name, "args": dict(args)}).encode() + b"\n"
        try:
            proc.stdin.write(request)
            proc.stdin.flush()
        except OSError:
            raise self._died(proc) from None
        line = _read_line(proc.stdout, time.monotonic() + timeout)
        if line is None:
            raise NativeFailure(
                f"the parser did not finish within {timeout:g} s (limits.file-timeout-seconds)",
                rule_id="MLS904",
                key="timeout",
            )
        if not line:
            raise self._died(proc)
        try:
            answer = json.loads(line)
        except (ValueError, RecursionError):
            raise NativeFailure(
                "the parser's answer could not be read", rule_id="MLS901", key="crash"
            ) from None
        if not isinstance(answer, dict):
            raise NativeFailure("the parser's answer is malformed", rule_id="MLS901", key="crash")
        if "error" in answer:
            error = answer["error"] if isinstance(answer["error"], dict) else {}
            kind, message = str(error.get("type", "")), str(error.get("message", ""))[:500]
            if kind == "FormatError":
                raise FormatError(message)
            if kind == "MemoryError":
                raise NativeFailure(
                    f"the parser ran out of its {MEMORY_LIMIT_BYTES // 1024**2} MiB memory limit",
                    rule_id="MLS904",
                    key="memory",
                )
            raise NativeFailure(
                f"the parser failed: {kind}: {message}", rule_id="MLS901", key="crash"
            )
        return answer.get("ok")

    def _died(self, proc: subprocess.Popen[bytes]) -> NativeFailure:
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None and code < 0:
            how = f"was killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        # A worker over its address-space limit usually dies in C (abort, SIGSEGV, SIGKILL).
        return NativeFailure(
            f"the parser crashed on this file (worker {how}; memory limit"
            f" {MEMORY_LIMIT_BYTES // 1024**2} MiB)",
            rule_id="MLS901",
            key="crash",
        )


def _read_line(stream: IO[bytes], deadline: float) -> bytes | None:
    """One line from the worker, or None past the deadline; b"" if the worker is gone."""
    fd = stream.fileno()
    chunks: list[bytes] = []
    total = 0
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return None
            data = os.read(fd, 1 << 20)
            if not data:
                return b""
            newline = data.find(b"\n")
            if newline >= 0:
                chunks.append(data[:newline])
                return b"".join(chunks)
            chunks.append(data)
            total += len(data)
            if total > MAX_ANSWER_BYTES:
                return b""


_WORKER = _Worker()


def call(name: str, args: Mapping[str, Any], *, timeout: float) -> Any:
    """Run one worker call (see :data:`_CALLS`); :class:`NativeFailure` when it cannot."""
    return _WORKER.call(name, args, timeout)


def call_in_process(name: str, args: Mapping[str, Any], *, timeout: float) -> Any:
    """The same call run here, unbounded (the answer still round-trips through JSON): for
    tests that monkeypatch the parsers, which a worker process would not see."""
    return json.loads(json.dumps(_CALLS[name](args), default=str))


def stop_worker() -> None:
    """End the worker process (the next call starts a new one); also run at exit."""
    _WORKER.stop()


def forget_worker() -> None:
    """In a forked child (mlsec.forks): leave the parent's worker alone, start one's own."""
    global _WORKER
    _WORKER = _Worker()


def read_keras_h5(path: str | os.PathLike[str], *, timeout: float) -> Any:
    """:func:`mlsec.formats.keras.read_keras_h5` in the worker; returns its ``KerasInfo``.

    The deadline is ``timeout`` (the per-file limit) or :data:`H5_TIMEOUT_SECONDS`, the
    shorter."""
    return _read_keras("keras_h5", path, timeout)


def read_keras_zip(path: str | os.PathLike[str], *, timeout: float) -> Any:
    """:func:`mlsec.formats.keras.read_keras_zip` in the worker: it opens the archive's
    ``model.weights.h5`` with h5py to count weights, so libhdf5 runs bounded here too."""
    return _read_keras("keras_zip", path, timeout)


def _read_keras(name: str, path: str | os.PathLike[str], timeout: float) -> Any:
    deadline = min(timeout, H5_TIMEOUT_SECONDS)
    return _decode_keras(call(name, {"path": os.fspath(path)}, timeout=deadline))


# -- KerasInfo over JSON ---------------------------------------------------------------------
# Field by field from the dataclass definitions, so fields added to KerasInfo travel too; tuples
# (LambdaLayer.strings) are restored from JSON lists.
def _encode_keras(info: Any) -> dict[str, Any]:
    return {
        f.name: (
            [dataclasses.asdict(item) for item in getattr(info, f.name)]
            if f.name in ("lambdas", "references")
            else getattr(info, f.name)
        )
        for f in dataclasses.fields(info)
    }


def _decode_keras(data: Any) -> Any:
    from mlsec.formats.keras import KerasInfo, LambdaLayer, ModuleReference

    if not isinstance(data, dict):
        raise NativeFailure("the parser's answer is malformed", rule_id="MLS901", key="crash")
    known = {f.name for f in dataclasses.fields(KerasInfo)}
    values = {k: v for k, v in data.items() if k in known}
    values["lambdas"] = [_rebuild(LambdaLayer, item) for item in data.get("lambdas") or []]
    values["references"] = [
        _rebuild(ModuleReference, item) for item in data.get("references") or []
    ]
    return KerasInfo(**values)


def _rebuild(cls: Callable[..., Any], item: Any) -> Any:
    if not isinstance(item, dict):
        raise NativeFailure("the parser's answer is malformed", rule_id="MLS901", key="crash")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(
        **{
            k: tuple(v) if isinstance(v, list) and "tuple" in str(fields[k].type) else v
            for k, v in item.items()
            if k in fields
        }
    )


# -- the worker's side -------------------------------------------------------------------------
def _keras_reader(name: str) -> Callable[[Mapping[str, Any]], Any]:
    """A worker call running ``mlsec.formats.keras.<name>`` on ``args["path"]``."""

    def run(args: Mapping[str, Any]) -> Any:
        from mlsec.formats import keras

        return _encode_keras(getattr(keras, name)(str(args["path"])))

    return run


def _call_modelscan(args: Mapping[str, Any]) -> Any:
    from mlsec.analyzers.modelscan_opinion import run_modelscan

    return run_modelscan(str(args["path"]), str(args["kind"]), bool(args["numpy_ok"]))


def _call_sleep(args: Mapping[str, Any]) -> Any:  # for tests: a parser that hangs
    time.sleep(float(args["seconds"]))
    return None


def _call_allocate(args: Mapping[str, Any]) -> Any:  # for tests: a parser that blows up
    return len(bytearray(int(args["bytes"])))


def _call_crash(args: Mapping[str, Any]) -> Any:  # for tests: a parser that dies in C
    os.abort()


_CALLS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "keras_h5": _keras_reader("read_keras_h5"),
    "keras_zip": _keras_reader("read_keras_zip"),
    "modelscan": _call_modelscan,
    "sleep": _call_sleep,
    "allocate": _call_allocate,
    "crash": _call_crash,
}


def _serve() -> None:
    import resource
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends the worker with the scan
    limit = int(os.environ.get("MLSEC_NATIVE_MEMORY", MEMORY_LIMIT_BYTES))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        failed = False
        try:
            request = json.loads(line)
            answer: dict[str, Any] = {"ok": _CALLS[request["call"]](request["args"])}
        except FormatError as exc:
            answer = {"error": {"type": "FormatError", "message": str(exc)}}
        except MemoryError:
            answer = {"error": {"type": "MemoryError", "message": "out of memory"}}
            failed = True
        except Exception as exc:  # anything else: reported, then a fresh worker
            answer = {"error": {"type": type(exc).__name__, "message": str(exc)}}
            failed = True
        try:
            text = json.dumps(answer, default=str)
        except (ValueError, TypeError, RecursionError) as exc:
            text = json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}})
            failed = True
        out.write(text.encode() + b"\n")
        out.flush()
        if failed:
            return  # after a MemoryError or an odd failure, do not trust this process again


if __name__ == "__main__":
    _serve()
else:
    import atexit

    atexit.register(stop_worker)
