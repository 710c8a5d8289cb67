"""The local engine: clips in a process pool on this machine (`pipeline.engines.pool`), chunk downloads in one
background thread. What it runs, and in which order it yields, is in `pipeline.engines.base`."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from pipeline.engines import DEFAULT_RETRIES
from pipeline.engines.base import (
    ChunkResults,
    ChunkSlot,
    ChunkState,
    ChunkWork,
    ClipOps,
    OnInterrupt,
    complete_chunk_results,
    failure_reason,
    fetch_chunk,
    free_chunk,
    raise_environment_fault,
)
from pipeline.engines.pool import Task, WorkerLost, WorkerPool

log = logging.getLogger(__name__)


class LocalEngine:
    """This machine: clips in a `WorkerPool` of `workers`, chunk downloads in one background thread.

    A worker that dies (killed, crashed in a decoder) fails only the clip it was cutting, and is replaced. That clip
    is tried again up to `retries` times, then recorded as skipped with the reason.
    """

    def __init__(self, workers: int = 1, retries: int = DEFAULT_RETRIES) -> None:
        self.workers = workers
        self.retries = retries
        self._on_interrupt: OnInterrupt = None
        self._pool: WorkerPool | None = None
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
        if self._pool is not None:  # on an error the cuts in flight stop and remove their partial files
            self._pool.close(stop=exc_type is not None)

    def _start_pool(self, n: int) -> WorkerPool:
        if self._pool is None:
            self._pool = WorkerPool(n, self.retries, noun="the clip")
        return self._pool

    def _submit(self, job: Any, ops: ClipOps) -> Task:
        assert self._pool is not None
        return self._pool.submit(ops.cut, (job, ops.config), str(getattr(job, "clip_id", job)))

    def _record(self, task: Task, job: Any, ops: ClipOps, others: Callable[[], list[Future]] = list) -> dict:
        """Wait for a cut's record, through its retries; `others()`: other futures whose end the caller acts on."""
        assert self._pool is not None
        try:
            return self._pool.result(task, others)
        except WorkerLost as lost:
            return ops.skipped(job, str(lost))

    def map_clips(self, jobs: Sequence[Any], ops: ClipOps) -> Iterator[dict]:
        """Start the jobs now (the pool forks here, even for one worker: a clip that kills it costs only itself);
        yield their records in job order."""
        if not jobs:
            return iter(())
        self._start_pool(min(self.workers, len(jobs)))
        tasks = [self._submit(job, ops) for job in jobs]
        return (self._record(task, job, ops) for task, job in zip(tasks, jobs, strict=True))

    def run_chunks(
        self, works: Iterable[ChunkWork], ops: ClipOps, max_in_flight: int, on_interrupt: OnInterrupt = None
    ) -> ChunkResults:
        """Download, cut and free chunks, at most `max_in_flight` on disk; yield (job, record) in order.

        `on_interrupt` is called if the run stops early (Ctrl-C): it should stop the transfer in flight.
        """
        self._on_interrupt = on_interrupt
        self._start_pool(self.workers).start_workers()  # fork every worker now, before the download thread
        self._downloads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-download")
        return self._chunk_results(iter(works), ops, max_in_flight)

    def _chunk_results(self, works: Iterator[ChunkWork], ops: ClipOps, max_in_flight: int) -> ChunkResults:
        window: deque[ChunkSlot] = deque()
        assert self._downloads is not None
        downloads = self._downloads

        def top_up() -> None:
            while len(window) < max_in_flight and (work := next(works, None)) is not None:
                if work.complete:
                    window.append(ChunkSlot(work, ChunkState.COMPLETE))
                else:
                    fetched = downloads.submit(fetch_chunk, work, self.retries)
                    window.append(ChunkSlot(work, ChunkState.FETCHING, fetched=fetched))

        def submit_ready() -> list[Future]:
            """Start the cuts of every downloaded chunk; return the downloads still running."""
            running = []
            for slot in window:
                if slot.state is not ChunkState.FETCHING:
                    continue
                if not slot.fetched.done():
                    running.append(slot.fetched)
                elif (err := slot.fetched.exception()) is not None:
                    raise_environment_fault(err)
                    slot.failed(failure_reason(err))
                else:
                    slot.cutting([self._submit(job, ops) for job in slot.work.jobs])
            return running

        top_up()
        while window:
            slot = window[0]
            while slot.state is ChunkState.FETCHING:
                wait(submit_ready(), return_when=FIRST_COMPLETED)
            yield from self._slot_results(slot, ops, submit_ready)
            window.popleft()
            top_up()
            submit_ready()

    def _slot_results(self, slot: ChunkSlot, ops: ClipOps, others: Callable[[], list[Future]]) -> ChunkResults:
        """(job, record) of a chunk no longer FETCHING, in order; then its zips are freed."""
        if slot.state is ChunkState.COMPLETE:
            yield from complete_chunk_results(slot.work, ops)
            return
        for i, job in enumerate(slot.work.jobs):
            if slot.state is ChunkState.FAILED:
                yield job, ops.skipped(job, slot.failure)
            else:
                yield job, self._record(slot.clips[i], job, ops, others)
        free_chunk(slot.work)


__all__ = ["LocalEngine"]
