"""Picklable jobs over worker processes on this machine, each surviving its worker's death: `WorkerPool`.

The pool is pebble's: a worker that dies (killed, crashed in a decoder) fails only the job it was running, and is
replaced. That job is run again up to `retries` times; then waiting for it raises `WorkerLost`. The local engine's
clips and the dataset build's row-writing jobs both run here.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

from pebble import ProcessExpired, ProcessPool

from pipeline.engines import DEFAULT_RETRIES
from pipeline.engines.base import after_retries

log = logging.getLogger(__name__)

# Seconds between the calls of a waiting caller's `tick` (e.g. to draw the progress its workers report).
TICK_S = 0.5


def pool_context() -> multiprocessing.context.BaseContext:
    """fork where the platform has it (workers start in ~10 ms instead of re-importing pandas/PyAV), else spawn.

    With fork, the pool starts its workers at the first submit: do it before any other thread exists. A worker that
    replaces a dead one is forked from the pool's own thread; it runs only the job.
    """
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if sys.platform == "linux" and "fork" in methods else "spawn")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _run_job(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """`fn(*args)` with SIGTERM turned into SystemExit, so that a job stopped by the pool removes its partial files.

    The pool stops its workers with SIGTERM when a run stops early (Ctrl-C, an error); pebble's own handler would
    exit at once. A worker stopped from outside mid-job ends that job's try, which is then run again. Between jobs
    pebble's handler is back: a worker stopped while it exits after its last job ends quietly.
    """
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return fn(*args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _worker_lost(err: BaseException) -> str | None:
    """Why a job's worker went away (it died, or was stopped mid-job), or None for any other error."""
    if isinstance(err, ProcessExpired):
        return f"worker died (exit code {err.exitcode})"
    if isinstance(err, SystemExit):
        return f"worker stopped (exit code {err.code})"
    return None


class WorkerLost(Exception):
    """A job's worker went away on every try; the message says how, e.g. "worker died (exit code 1) (after 2
    retries)"."""


@dataclass
class Task:
    """One job in a `WorkerPool`: the call, its current try and how many it has had."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    # Names the job in the log.
    label: str
    future: Future
    attempts: int = 1


class WorkerPool:
    """Up to `workers` processes; a job whose worker went away is run again up to `retries` times.

    A context manager: on an error (Ctrl-C included) it stops the jobs in flight, else it waits for them.
    """

    def __init__(self, workers: int, retries: int = DEFAULT_RETRIES, noun: str = "the job") -> None:
        self.retries = retries
        # What the log calls a job tried again ("trying the clip again").
        self.noun = noun
        self._pool = ProcessPool(max_workers=workers, context=pool_context())

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(stop=exc_type is not None)

    def close(self, stop: bool = False) -> None:
        """Wait for the jobs in flight, or with `stop` end them (they remove their partial files: `_run_job`)."""
        if stop:
            self._pool.stop()
        else:
            self._pool.close()
        self._pool.join()

    def start_workers(self) -> None:
        """Start every worker now (with fork: before the caller starts threads of its own)."""
        self._pool.schedule(int).result()

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], label: str) -> Task:
        """Start `fn(*args)` (picklable: a module-level function) in a worker."""
        return Task(fn, args, label, self._pool.schedule(_run_job, (fn, args)))

    def result(
        self, task: Task, others: Callable[[], list[Future]] = list, tick: Callable[[], None] | None = None
    ) -> Any:
        """Wait for the task's result through its retries. `others()`: other futures whose end the caller acts on
        (each wakes the wait); `tick()`: called every `TICK_S` seconds while waiting.

        Raises:
            WorkerLost: the task's worker went away on its every try.
            Exception: what the job raised.
        """
        while True:
            while not task.future.done():
                wait([task.future, *others()], timeout=None if tick is None else TICK_S, return_when=FIRST_COMPLETED)
                if tick is not None:
                    tick()
            err = task.future.exception()
            lost = None if err is None else _worker_lost(err)
            if lost is None:
                return task.future.result()
            if task.attempts > self.retries:
                raise WorkerLost(f"{lost} {after_retries(self.retries)}")
            log.warning("%s: %s; trying %s again", task.label, lost, self.noun)
            task.future = self._pool.schedule(_run_job, (task.fn, task.args))
            task.attempts += 1


__all__ = ["TICK_S", "Task", "WorkerLost", "WorkerPool", "pool_context"]
