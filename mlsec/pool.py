"""Per-file analysis across the machine's cores, and from the result cache.

:func:`analyze_files` runs one :class:`~mlsec.analyzers.FileAnalyzer` over its files:

- results of unchanged files come from the result cache (:mod:`mlsec.resultcache`);
- the others are analyzed in this process, or, when there is enough work to pay for starting
  processes (:data:`MIN_FILES` files or :data:`MIN_BYTES` bytes), in ``ScanOptions.jobs``
  forked worker processes (0: one per CPU this process may use). Results come back in target
  order whatever the timing, so reports are the same with any ``--jobs``.

Workers are forks of the scan: they inherit the analyzer (its :meth:`begin` state), the
context and the targets, and receive only indexes. They ignore SIGINT: on Ctrl-C the scan
kills them and exits 130. A worker that dies (a crash in a C decompressor) has the files of
its chunks not yet sent back analyzed one per process, so the file that kills its process is
an internal error for that file alone, never a hang. Results travel as plain data
(:mod:`mlsec.resultcache`'s encoding), pickled through a pipe: the workers run mlsec's own
pure-Python parsers, like the scan process itself (native parsers stay in
:mod:`mlsec.native`'s bounded worker, which speaks JSON).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import IO, Any

from mlsec.analyzers import AnalysisContext, FileAnalyzer, FileOutcome, internal_error
from mlsec.errors import MlsecError
from mlsec.forks import Running, balanced, can_fork, fork_worker, frame, stop
from mlsec.walk import Target

# Below both, processes cost more than they save. Measured on 2 cores (1,000 and 128 small
# state-dict pickles, `mlsec scan -j1` against `-j2`): two workers break even at about 128
# such files and halve the time at 1,000; big files are worth it sooner.
MIN_FILES = 128
MIN_BYTES = 64 * 1024**2
CHUNKS_PER_JOB = 3  # pieces even out big and small files; each costs a round trip


def machine_jobs() -> int:
    """How many processes this scan may run at once: the CPUs it is allowed to use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# Memory one worker may need for a big file (the pickle machine's memo and stack); the default
# number of workers leaves that much per worker.
WORKER_MEMORY = 512 * 1024**2


def effective_jobs(jobs: int) -> int:
    """``jobs`` up to one per CPU (more workers cannot go faster, only fork more and hold
    more memory: ``--jobs 1000000`` would fork one per file), or for 0 one per CPU as memory
    allows."""
    if jobs >= 1:
        return min(jobs, machine_jobs())
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        memory = 0
    by_memory = max(1, memory // WORKER_MEMORY) if memory > 0 else machine_jobs()
    return min(machine_jobs(), by_memory)


def worth_a_pool(sizes: Sequence[int], jobs: int) -> bool:
    """Whether files of these work sizes (:meth:`FileAnalyzer.work_size`) pay for workers."""
    if jobs < 2 or len(sizes) < 2:
        return False
    enough = len(sizes) >= MIN_FILES or sum(sizes) >= MIN_BYTES
    return enough and can_fork()


def analyze_files(
    analyzer: FileAnalyzer, targets: Sequence[Target], ctx: AnalysisContext
) -> list[FileOutcome]:
    """Each target's outcome, in target order (see the module docstring)."""
    cache = ctx.cache if analyzer.per_file_outcomes else None
    outcomes: list[FileOutcome | None] = [None] * len(targets)
    todo: list[int] = []
    for index, target in enumerate(targets):
        hit = cache.get(analyzer.name, target) if cache is not None else None
        if hit is None:
            todo.append(index)
        else:
            outcomes[index] = hit
    if len(todo) < len(targets):
        ctx.progress(len(targets) - len(todo))
    jobs = effective_jobs(ctx.options.jobs) if analyzer.per_file_outcomes else 1
    pending = [targets[i] for i in todo]
    if pending:  # before the forks: the workers inherit it
        analyzer.begin(ctx)
    fresh: list[FileOutcome] | None = None
    sizes = [analyzer.work_size(t) for t in pending]
    if worth_a_pool(sizes, jobs):
        fresh = _in_pool(analyzer, pending, sizes, ctx, jobs)
    if fresh is None:  # too little work, or no process could be started
        fresh = []
        for target in pending:
            fresh.append(analyzer.analyze_one(target, ctx))
            ctx.progress(1)
    for index, outcome in zip(todo, fresh, strict=True):
        outcomes[index] = outcome
        if cache is not None and outcome.cacheable:
            cache.put(analyzer.name, targets[index], outcome)
    return [o for o in outcomes if o is not None]


# -- the pool -----------------------------------------------------------------------------------
# What the workers inherit when they are forked (set just before, cleared after).
_JOB: tuple[FileAnalyzer, AnalysisContext, Sequence[Target]] | None = None


# A file costs something however small (its open, its stat) when work is shared out by size.
FILE_COST = 4096


def _chunks(sizes: Sequence[int], jobs: int) -> list[list[int]]:
    """Indexes in pieces of about equal work, heaviest first."""
    return balanced([size + FILE_COST for size in sizes], jobs * CHUNKS_PER_JOB)


def _work(indexes: list[int]) -> list[Any]:
    """In a worker: the encoded outcomes of these targets."""
    from mlsec.resultcache import encode_outcome

    assert _JOB is not None
    analyzer, ctx, targets = _JOB
    out = []
    for i in indexes:
        outcome = analyzer.analyze_one(targets[i], ctx)
        try:
            out.append(encode_outcome(outcome))
        except Exception as exc:  # a record that does not travel: a bug, for this file only
            failed = FileOutcome(errors=(internal_error(targets[i].relpath, analyzer.name, exc),))
            out.append(encode_outcome(failed))
    return out


def _deal(chunks: list[list[int]], sizes: Sequence[int], jobs: int) -> list[list[list[int]]]:
    """The chunks (heaviest first) dealt to ``jobs`` workers, each to the least loaded."""
    loads = [sum(sizes[i] + FILE_COST for i in chunk) for chunk in chunks]
    return [[chunks[k] for k in share] for share in balanced(loads, jobs)]


def _send_share(share: list[list[int]], pipe: IO[bytes]) -> None:
    """In a pool worker: the encoded outcomes of each chunk of its share, one frame (a pickle
    of plain data) per chunk, so the scan keeps what a worker finished if it dies later."""
    import pickle

    for chunk in share:
        result: Any
        try:
            result = _work(chunk)
        except MlsecError as exc:  # the user's to fix (say, a configuration): it ends
            result = exc  # the scan, with its message, as in the scan's own process
        pipe.write(frame(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)))
        pipe.flush()
        if isinstance(result, MlsecError):
            break


def _in_pool(
    analyzer: FileAnalyzer,
    targets: Sequence[Target],
    sizes: Sequence[int],
    ctx: AnalysisContext,
    jobs: int,
) -> list[FileOutcome] | None:
    """The outcomes of ``targets`` from ``jobs`` forked workers, in target order; None when no
    worker could be started (the caller then analyzes them itself).

    Workers are :mod:`mlsec.forks` workers; chunks are dealt out before the forks, and each
    comes back as one frame."""
    import gc
    import selectors

    global _JOB
    chunks = _chunks(sizes, jobs)
    done: dict[int, FileOutcome] = {}
    lost: list[int] = []  # files of chunks whose worker died before sending them
    running: list[Running] = []
    _JOB = (analyzer, ctx._replace(progress=_no_progress), targets)
    # The workers share the scan's memory copy-on-write; a garbage collection in a worker
    # would walk (and so copy) every inherited object: frozen, they are left alone.
    gc.freeze()
    selector = selectors.DefaultSelector()
    try:
        for share in _deal(chunks, sizes, jobs):
            worker = fork_worker(functools.partial(_send_share, share), share)
            if worker is None:  # a process limit, no memory: this process does the work
                stop(running)
                return None
            running.append(worker)
            selector.register(worker.fd, selectors.EVENT_READ, worker)
        while selector.get_map():
            for key, _ in selector.select():
                ready: Running = key.data
                fd = ready.fd
                more = ready.receive()
                for frame in ready.frames():
                    chunk = ready.waiting.pop(0)
                    done.update(zip(chunk, _received(frame, chunk, targets, analyzer), strict=True))
                    ctx.progress(len(chunk))
                if not more:  # the worker is done, or died
                    selector.unregister(fd)
                    lost.extend(i for chunk in ready.waiting for i in chunk)
    except BaseException:  # Ctrl-C or a bug here: no worker outlives the scan
        stop(running)
        raise
    finally:
        selector.close()
        _JOB = None
        gc.unfreeze()
    for index in sorted(lost):  # one process each: the file that kills its process is known
        done[index] = _isolated(analyzer, targets[index], ctx)
        ctx.progress(1)
    return [done[i] for i in range(len(targets))]


def _decoded(decode: Any, item: Any, target: Target, analyzer: FileAnalyzer) -> FileOutcome:
    outcome = decode(item)
    if outcome is None:  # cannot happen with mlsec's own workers; never trusted blindly
        return FileOutcome(
            errors=(internal_error(target.relpath, analyzer.name, ValueError("bad result")),)
        )
    assert isinstance(outcome, FileOutcome)
    return outcome


def _isolated(analyzer: FileAnalyzer, target: Target, ctx: AnalysisContext) -> FileOutcome:
    """One file in a process of its own, after a worker died: if it dies too, it was this
    file, and the file gets an internal error (as it does when no process can be started: it
    may be what kills a process, so it is never analysed in the scan's own)."""
    global _JOB
    _JOB = (analyzer, ctx._replace(progress=_no_progress), [target])
    try:
        worker = fork_worker(functools.partial(_send_share, [[0]]), [[0]])
        if worker is None:
            failed = RuntimeError("no process could be started to analyse it")
            return FileOutcome(errors=(internal_error(target.relpath, analyzer.name, failed),))
        try:
            frames = worker.read_all()
        finally:
            stop([worker])
    finally:
        _JOB = None
    if frames:
        return _received(frames[0], [0], [target], analyzer)[0]
    code = os.waitstatus_to_exitcode(worker.status or 0)
    how = f"killed by signal {-code}" if code < 0 else f"status {code}"
    died = RuntimeError(f"worker process died ({how})")
    return FileOutcome(errors=(internal_error(target.relpath, analyzer.name, died),))


def _received(
    frame: bytes, chunk: list[int], targets: Sequence[Target], analyzer: FileAnalyzer
) -> list[FileOutcome]:
    """The outcomes of a chunk's files from the frame a worker sent for it (a user error it
    met is raised here)."""
    import pickle

    from mlsec.resultcache import decode_outcome

    try:
        encoded = pickle.loads(frame)  # noqa: S301 - our own worker's data
        if isinstance(encoded, MlsecError):
            raise encoded
        return [
            _decoded(decode_outcome, item, targets[index], analyzer)
            for index, item in zip(chunk, encoded, strict=True)
        ]
    except MlsecError:
        raise
    except Exception as exc:  # a bug on the way back: these files only
        return [
            FileOutcome(errors=(internal_error(targets[index].relpath, analyzer.name, exc),))
            for index in chunk
        ]


def _no_progress(n: int) -> None:
    pass
