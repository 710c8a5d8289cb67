"""How clips and chunks run: on this machine (`LocalEngine`, a process pool) or on Ray (`pipeline.engines.ray_engine`).

Both engines run the same work and yield each clip's record in the same (chunk, clip id) order, so the
aggregate files they lead to are byte-identical. Chunk work (`pipeline prepare`) is a window of at most
`max_in_flight` chunks whose source zips are on disk: a chunk is downloaded while the one before it is cut, its
clips are cut as soon as its download is verified, and its zips are deleted once all its clips are done.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

from pebble import ProcessExpired, ProcessPool

from pipeline.core.errors import PipelineError, first_line

log = logging.getLogger(__name__)

# Called when a chunk run stops early (Ctrl-C), to stop the transfer in flight.
OnInterrupt = Callable[[], None] | None
# (clip job, clip record) pairs in (chunk, clip id) order.
ChunkResults = Iterator[tuple[Any, dict]]


@dataclass(frozen=True)
class ClipOps:
    """The per-clip functions an engine runs. Module-level functions only: they go to worker processes and Ray."""

    # Settings passed to every call (a `SegmentConfig`).
    config: Any
    # (job, config) -> the clip's record; never raises for bad input.
    cut: Callable[[Any, Any], dict]
    # (job, reason) -> a skipped record, for a clip whose work failed (download, dead worker).
    skipped: Callable[[Any, str], dict]
    # (job, config) -> the record of a clip already complete, or None.
    reused: Callable[[Any, Any], dict | None]


@dataclass(frozen=True)
class ChunkWork:
    """One chunk of `pipeline prepare`: its clips, and how to fetch and free its source zips."""

    # Chunk id.
    chunk: int
    # Its clip jobs, in order.
    jobs: tuple[Any, ...]
    # Downloads and verifies the chunk's zips (raises on failure); None when every clip is already complete.
    fetch: Callable[[], object] | None
    # Deletes the chunk's zips (on the node that fetched them) and returns the bytes freed; None keeps them.
    free: Callable[[], int] | None = None


def fetch_chunk(work: ChunkWork, retries: int) -> None:
    """Run `work.fetch`, trying again up to `retries` times (downloads resume); PipelineError if it keeps failing."""
    assert work.fetch is not None
    for attempt in range(retries + 1):
        try:
            work.fetch()
            return
        except Exception as err:  # noqa: BLE001 - any transfer failure is retried, then reported per clip
            if attempt == retries:
                raise PipelineError(
                    f"download of chunk {work.chunk} failed after {retries + 1} attempt(s): {failure_reason(err)}"
                ) from None
            log.warning("chunk %d: download attempt %d failed (%s); retrying", work.chunk, attempt + 1, err)


def free_chunk(work: ChunkWork) -> int:
    """Delete a chunk's source zips unless they are kept; return the bytes freed."""
    return work.free() if work.free is not None else 0


def reused_records(work: ChunkWork, ops: ClipOps) -> Iterator[dict]:
    """Records of a chunk whose clips were all complete when it was listed."""
    for job in work.jobs:
        yield ops.reused(job, ops.config) or ops.skipped(job, "clip record vanished during the run; re-run")


def after_retries(retries: int) -> str:
    """The end of a skip reason: "(after 1 retry)", "(after 2 retries)"."""
    return f"(after {retries} {'retry' if retries == 1 else 'retries'})"


def failure_reason(err: BaseException) -> str:
    """One line for the manifest."""
    return f"{type(err).__name__}: {first_line(err)}" if str(err).strip() else type(err).__name__


def pool_context() -> multiprocessing.context.BaseContext:
    """fork where the platform has it (workers start in ~10 ms instead of re-importing pandas/PyAV), else spawn.

    With fork, the pool starts its workers at the first submit: do it before any other thread exists. A worker that
    replaces a dead one is forked from the pool's own thread; it runs only the cut.
    """
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if sys.platform == "linux" and "fork" in methods else "spawn")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _init_worker() -> None:
    """A pool worker turns SIGTERM into SystemExit, so the clip it is cutting removes its partial files.

    The pool stops its workers with SIGTERM when a run stops early (Ctrl-C, an error); pebble's own handler would
    exit at once. A worker stopped from outside mid-clip ends that clip's cut, which is then tried again.
    """
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _worker_lost(err: BaseException) -> str | None:
    """Why a cut's worker went away (it died, or was stopped mid-clip), or None for any other error."""
    if isinstance(err, ProcessExpired):
        return f"worker died (exit code {err.exitcode})"
    if isinstance(err, SystemExit):
        return f"worker stopped (exit code {err.code})"
    return None


class Engine(Protocol):
    """What runs clips and chunks: `LocalEngine` or `pipeline.engines.ray_engine.RayEngine` (a context manager)."""

    def describe(self) -> str: ...

    def map_clips(self, jobs: Sequence[Any], ops: ClipOps) -> Iterator[dict]:
        """Start the jobs now; yield their records in job order."""
        ...

    def run_chunks(
        self, works: Iterable[ChunkWork], ops: ClipOps, max_in_flight: int, on_interrupt: OnInterrupt = None
    ) -> ChunkResults:
        """Download, cut and free chunks, a bounded number on disk; yield (job, record) in order."""
        ...

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass
class _Cut:
    """One clip in the pool: its job, its current try and how many it has had."""

    job: Any
    future: Future
    attempts: int = 1


@dataclass
class _Slot:
    """A chunk in the local window."""

    work: ChunkWork
    fetched: Future | None
    clips: list[_Cut] | None = None
    failure: str | None = None


class LocalEngine:
    """This machine: clips in a process pool of `workers`, chunk downloads in one background thread.

    The pool is pebble's: a worker that dies (killed, crashed in a decoder) fails only the clip it was cutting, and
    is replaced. That clip is tried again up to `retries` times, then recorded as skipped with the reason.
    """

    def __init__(self, workers: int = 1, retries: int = 2) -> None:
        self.workers = workers
        self.retries = retries
        self._on_interrupt: OnInterrupt = None
        self._pool: ProcessPool | None = None
        self._downloads: ThreadPoolExecutor | None = None

    def describe(self) -> str:
        return f"local ({self.workers} process(es))"

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._downloads is not None:
            if exc_type is not None and self._on_interrupt is not None:
                self._on_interrupt()
            self._downloads.shutdown(wait=True, cancel_futures=True)
        if self._pool is not None:
            if exc_type is not None:  # the cuts in flight stop and remove their partial files (`_init_worker`)
                self._pool.stop()
            else:
                self._pool.close()
            self._pool.join()

    def _start_pool(self, n: int) -> ProcessPool:
        if self._pool is None:
            self._pool = ProcessPool(max_workers=n, initializer=_init_worker, context=pool_context())
        return self._pool

    def _schedule(self, job: Any, ops: ClipOps) -> Future:
        assert self._pool is not None
        return self._pool.schedule(ops.cut, (job, ops.config))

    def _settle(self, cut: _Cut, ops: ClipOps) -> dict | None:
        """The record of a finished cut; None when its worker went away and it was submitted again."""
        err = cut.future.exception()
        lost = None if err is None else _worker_lost(err)
        if lost is None:
            return cut.future.result()
        if cut.attempts > self.retries:
            return ops.skipped(cut.job, f"{lost} {after_retries(self.retries)}")
        log.warning("%s: %s; trying the clip again", getattr(cut.job, "clip_id", cut.job), lost)
        cut.future = self._schedule(cut.job, ops)
        cut.attempts += 1
        return None

    def _record(self, cut: _Cut, ops: ClipOps, waiting: Callable[[], list[Future]] = list) -> dict:
        """Wait for a cut's record, through its retries; `waiting()`: other futures whose end the caller acts on."""
        while True:
            while not cut.future.done():
                wait([cut.future, *waiting()], return_when=FIRST_COMPLETED)
            if (record := self._settle(cut, ops)) is not None:
                return record

    def map_clips(self, jobs: Sequence[Any], ops: ClipOps) -> Iterator[dict]:
        """Start the jobs now (the pool forks here, even for one worker: a clip that kills it costs only itself);
        yield their records in job order."""
        if not jobs:
            return iter(())
        self._start_pool(min(self.workers, len(jobs)))
        cuts = [_Cut(job, self._schedule(job, ops)) for job in jobs]
        return (self._record(cut, ops) for cut in cuts)

    def run_chunks(
        self, works: Iterable[ChunkWork], ops: ClipOps, max_in_flight: int, on_interrupt: OnInterrupt = None
    ) -> ChunkResults:
        """Download, cut and free chunks, at most `max_in_flight` on disk; yield (job, record) in order.

        `on_interrupt` is called if the run stops early (Ctrl-C): it should stop the transfer in flight.
        """
        self._on_interrupt = on_interrupt
        self._start_pool(self.workers).schedule(int).result()  # fork every worker now, before the download thread
        self._downloads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-download")
        return self._chunk_results(iter(works), ops, max_in_flight)

    def _chunk_results(self, works: Iterator[ChunkWork], ops: ClipOps, max_in_flight: int) -> ChunkResults:
        window: deque[_Slot] = deque()
        assert self._downloads is not None
        downloads = self._downloads

        def top_up() -> None:
            while len(window) < max_in_flight and (work := next(works, None)) is not None:
                fetched = downloads.submit(fetch_chunk, work, self.retries) if work.fetch else None
                window.append(_Slot(work, fetched))

        def submit_ready() -> list[Future]:
            """Start the cuts of every downloaded chunk; return the downloads still running."""
            running = []
            for slot in window:
                if slot.clips is not None or slot.fetched is None:
                    continue
                if not slot.fetched.done():
                    running.append(slot.fetched)
                elif (err := slot.fetched.exception()) is not None:
                    slot.failure, slot.clips = failure_reason(err), []
                else:
                    slot.clips = [_Cut(job, self._schedule(job, ops)) for job in slot.work.jobs]
            return running

        top_up()
        while window:
            slot = window[0]
            if slot.fetched is None:
                yield from zip(slot.work.jobs, reused_records(slot.work, ops), strict=True)
                free_chunk(slot.work)
            else:
                while slot.clips is None:
                    wait(submit_ready(), return_when=FIRST_COMPLETED)
                for i, job in enumerate(slot.work.jobs):
                    if slot.failure is not None:
                        yield job, ops.skipped(job, slot.failure)
                        continue
                    yield job, self._record(slot.clips[i], ops, submit_ready)
                free_chunk(slot.work)
            window.popleft()
            top_up()
            submit_ready()


__all__ = [
    "ChunkWork",
    "after_retries",
    "ClipOps",
    "Engine",
    "LocalEngine",
    "failure_reason",
    "fetch_chunk",
    "free_chunk",
    "pool_context",
    "reused_records",
]
