"""The build's row-writing jobs: the segments file's parts cut into `num_proc` jobs (`job_ranges`), run in this
process for one job, else in a `pipeline.engines.pool.WorkerPool`.

A worker that dies (killed, out of memory) costs only the try of its job, which is run again, up to
`DEFAULT_RETRIES` times, from scratch: it writes the same shards under the same names, replacing what the dead try
left. Workers report the records they have read through a manager queue; the bar counts each job's furthest try, so
a retried job is not counted twice.
"""

from __future__ import annotations

import queue
from typing import Any

import numpy as np

from pipeline.contracts.dataset_reader import SPLITS
from pipeline.core.errors import PipelineError
from pipeline.core.progress import ProgressSink
from pipeline.engines import DEFAULT_RETRIES
from pipeline.engines.pool import WorkerLost, WorkerPool, pool_context
from pipeline.stages.dataset.rows import RowsJob, write_rows
from pipeline.stages.dataset.shards import Shard

# The shards of each side written by one job, in file order.
JobShards = dict[str, list[Shard]]


def job_ranges(part_rows: list[int], jobs: int) -> list[range]:
    """Consecutive parts cut into at most `jobs` ranges of about equal records (one per writing process)."""
    bounds = np.searchsorted(np.cumsum(part_rows), np.arange(1, jobs) * sum(part_rows) / jobs, side="right")
    edges = sorted({0, *(int(b) for b in bounds), len(part_rows)})
    return [range(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def write_jobs(jobs: list[RowsJob], num_proc: int, progress: ProgressSink, records: int) -> JobShards:
    """Run the row-writing jobs (in worker processes when `num_proc` > 1), advancing `progress` by the records
    read; the shards per side in file order.

    Raises:
        PipelineError: a job's worker died on its every try (or what a job raised).
    """
    progress.start("writing rows", records)
    try:
        if num_proc > 1 and len(jobs) > 1:
            results = _write_in_workers(jobs, progress)
        else:
            results = [write_rows(job, progress.advance) for job in jobs]
    finally:
        progress.finish()
    return {side: [shard for result in results for shard in result[side]] for side in SPLITS}


def _write_in_workers(jobs: list[RowsJob], progress: ProgressSink) -> list[JobShards]:
    with pool_context().Manager() as manager, WorkerPool(len(jobs), DEFAULT_RETRIES, noun="the job") as pool:
        reports = _Reports(manager.Queue(), progress)
        tasks = [pool.submit(_write_reporting, (job, reports.queue), _label(job)) for job in jobs]
        results = []
        for job, task in zip(jobs, tasks, strict=True):
            try:
                results.append(pool.result(task, tick=reports.drain))
            except WorkerLost as lost:
                raise PipelineError(f"{_label(job)} failed: {lost}") from None
        reports.drain()
        return results


def _write_reporting(job: RowsJob, reports: Any) -> JobShards:
    """`write_rows` in a worker: after each batch, puts (job index, records this try has read) on `reports`."""
    read = 0

    def advance(records: int) -> None:
        nonlocal read
        read += records
        reports.put((job.index, read))

    return write_rows(job, advance)


class _Reports:
    """The records read per job, from the workers' reports; `progress` advances by each job's furthest try."""

    def __init__(self, reports: Any, progress: ProgressSink) -> None:
        self.queue = reports
        self.progress = progress
        self.furthest: dict[int, int] = {}

    def drain(self) -> None:
        while True:
            try:
                index, read = self.queue.get_nowait()
            except queue.Empty:
                return
            gain = read - self.furthest.get(index, 0)
            if gain > 0:
                self.furthest[index] = read
                self.progress.advance(gain)


def _label(job: RowsJob) -> str:
    return f"{job.path}: row-writing job {job.index} (parts {job.parts.start}-{job.parts.stop - 1})"


__all__ = ["JobShards", "job_ranges", "write_jobs"]
