"""Forked worker processes: the primitive under the walk's parallel read, the analysis pool
(:mod:`mlsec.pool`) and the BOM's hashing (:mod:`mlsec.hashing`).

A worker is a plain ``os.fork`` of the scan: it inherits what it works on instead of being
sent it, runs one function on the write end of a pipe, and exits. Results come back as
length-prefixed frames. Plain forks and pipes, not multiprocessing or concurrent.futures:
importing those costs 5 and 14 ms, before the first file (measured with
``python benchmarks/bench_scale.py --cases small-models``).

:class:`ForkedSlices` maps a function over slices of work in workers started at once and
collected later; a slice whose worker could not be started or died is done in the calling
process, so it is only for work that cannot kill a process (stat and read, hashing). Analysis,
which can, goes to :mod:`mlsec.pool`, which isolates the file that kills its worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from typing import IO, Any, Generic, TypeVar

_Item = TypeVar("_Item")


def can_fork() -> bool:
    """Workers are forks (they inherit the scan's state); where there is no fork (Windows),
    the work is done in the scan's process. (Not multiprocessing's list of start methods:
    importing multiprocessing costs 5 ms.)"""
    return hasattr(os, "fork")


def balanced(weights: Sequence[int], count: int) -> list[list[int]]:
    """The indexes of ``weights`` in at most ``count`` pieces of about equal total weight
    (largest first, each to the lightest piece), heaviest piece first, each in index order."""
    count = max(1, min(count, len(weights)))
    pieces: list[list[int]] = [[] for _ in range(count)]
    totals = [0] * count
    for index in sorted(range(len(weights)), key=lambda i: -weights[i]):
        lightest = min(range(count), key=totals.__getitem__)
        pieces[lightest].append(index)
        totals[lightest] += weights[index]
    order = sorted(range(count), key=lambda i: -totals[i])
    return [sorted(pieces[i]) for i in order if pieces[i]]


def frame(data: bytes) -> bytes:
    """One message from a worker: its length, then the data."""
    return len(data).to_bytes(8, "little") + data


class Running:
    """One worker as the scan sees it: its process, its pipe, the pieces of work not yet back
    (pool workers), its exit status once reaped."""

    __slots__ = ("buffer", "fd", "pid", "status", "waiting")

    def __init__(self, pid: int, fd: int, share: list[list[int]]) -> None:
        self.pid, self.fd, self.waiting, self.buffer = pid, fd, list(share), bytearray()
        self.status: int | None = None

    def receive(self) -> bool:
        """Read what the worker has sent; False (worker closed and reaped) at the end."""
        data = os.read(self.fd, 1 << 20)
        self.buffer += data
        if data:
            return True
        os.close(self.fd)
        self.fd = -1
        _, self.status = os.waitpid(self.pid, 0)
        self.pid = 0
        return False

    def read_all(self) -> list[bytes]:
        """Every frame the worker sends, once it has ended (and been reaped)."""
        while self.receive():
            pass
        return self.frames()

    def frames(self) -> list[bytes]:
        """The complete frames received so far (taken out of the buffer)."""
        out = []
        while len(self.buffer) >= 8:
            size = int.from_bytes(self.buffer[:8], "little")
            if len(self.buffer) < 8 + size:
                break
            out.append(bytes(self.buffer[8 : 8 + size]))
            del self.buffer[: 8 + size]
        return out


def child_start() -> None:
    """What every worker does first."""
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scan handles Ctrl-C and kills us
    native = sys.modules.get("mlsec.native")  # not imported: there is no worker to forget
    if native is not None:
        native.forget_worker()  # the scan's native worker is not ours to talk to


def fork_worker(work: Callable[[IO[bytes]], object], share: list[list[int]]) -> Running | None:
    """A forked worker that runs ``work`` on the write end of a pipe and exits (status 0 when
    ``work`` returned), with ``share``, the chunks it is to send back (pool workers); None
    when no process (or pipe) could be had: a process limit, no memory, no descriptors."""
    try:
        receive, send = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(receive)
        os.close(send)
        return None
    if pid == 0:  # the worker: never returns
        status = 1
        try:
            os.close(receive)
            child_start()
            with open(send, "wb") as pipe:
                work(pipe)
            status = 0
        finally:
            os._exit(status)
    os.close(send)
    return Running(pid, receive, share)


def stop(running: Sequence[Running]) -> None:
    """Kill and reap the workers still running, close their pipes."""
    for worker in running:
        if worker.pid:
            with contextlib.suppress(OSError):
                os.kill(worker.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(worker.pid, 0)
            worker.pid = 0
        if worker.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(worker.fd)
            worker.fd = -1


class ForkedSlices(Generic[_Item]):
    """``[[func(x) for x in s] for s in slices]``, each slice in a worker forked now (which
    inherits ``func`` and the slice), collected by :meth:`results`. Results travel with
    :mod:`marshal`, so they must be plain data (numbers, strings, bytes, tuples, lists, None),
    one frame per slice. A slice whose worker could not be started (the slices after it are
    not tried either), failed or died is done by :meth:`results` in this process, so the
    result is the same whatever happens to the workers. Used as a context manager, leaving
    kills the workers still running (an error, Ctrl-C)."""

    def __init__(self, func: Callable[[_Item], Any], slices: Sequence[Sequence[_Item]]) -> None:
        import marshal

        self._func = func
        self._slices = slices
        self._workers: list[Running] = []
        if not can_fork():
            return
        try:
            for piece in slices:

                def send(pipe: IO[bytes], piece: Sequence[_Item] = piece) -> None:
                    pipe.write(frame(marshal.dumps([func(x) for x in piece])))

                worker = fork_worker(send, [])
                if worker is None:  # no process: the slices left are done here
                    break
                self._workers.append(worker)
        except BaseException:  # Ctrl-C between two forks: none is left behind
            self.stop()
            raise

    def results(self) -> list[list[Any]]:
        """Each slice's results, in order, once every worker has ended."""
        import marshal

        out: list[list[Any]] = []
        try:
            for index, piece in enumerate(self._slices):
                part: Any = None
                if index < len(self._workers):
                    worker = self._workers[index]
                    frames = worker.read_all()
                    if worker.status == 0 and len(frames) == 1:
                        try:
                            part = marshal.loads(frames[0])  # noqa: S302 - our own fork's data
                        except (EOFError, ValueError, TypeError):
                            part = None
                if not isinstance(part, list) or len(part) != len(piece):
                    part = [self._func(x) for x in piece]
                out.append(part)
        finally:
            self.stop()
        return out

    def stop(self) -> None:
        """Kill and reap the workers still running."""
        stop(self._workers)

    def __enter__(self) -> ForkedSlices[_Item]:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        self.stop()


def fork_map(func: Callable[[_Item], Any], items: Sequence[_Item], jobs: int) -> list[Any]:
    """``[func(x) for x in items]`` computed in ``jobs`` processes: this one does the first
    slice while forks of it do the others (see :class:`ForkedSlices`). One trip per worker,
    for many small pieces of work that cannot kill a process, like the walk's stat and read."""
    if jobs < 2 or len(items) < 2 or not can_fork():
        return [func(x) for x in items]
    bounds = [len(items) * k // jobs for k in range(jobs + 1)]
    slices = [items[bounds[k] : bounds[k + 1]] for k in range(jobs)]
    with ForkedSlices(func, slices[1:]) as others:
        out = [func(x) for x in slices[0]]
        for part in others.results():
            out.extend(part)
    return out
