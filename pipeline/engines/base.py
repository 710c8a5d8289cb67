"""What every engine shares: the `Engine` protocol, the work it runs (`ClipOps`, `ChunkWork`), a chunk's place in
an engine's window (`ChunkSlot`, `ChunkState`), and the helpers to fetch, free and account for a chunk.

Engines run clips and chunks on this machine (`pipeline.engines.local.LocalEngine`, a process pool) or on Ray
(`pipeline.engines.ray_engine.RayEngine`). Both run the same work and yield each clip's record in the same (chunk,
clip id) order, so the aggregate files they lead to are byte-identical. Chunk work (`pipeline prepare`) is a window
of at most `max_in_flight` chunks whose source zips are on disk: a chunk is downloaded while the one before it is
cut, its clips are cut as soon as its download is verified, and its zips are deleted once all its clips are done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from pipeline.core.environment_errors import environment_fault, is_environment_fault
from pipeline.core.errors import PipelineError, first_line

log = logging.getLogger(__name__)

# How the skip reason of a clip whose chunk could not be downloaded begins (after the error's type name).
DOWNLOAD_FAILED = "download of chunk"

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

    @property
    def complete(self) -> bool:
        """Every clip was complete when the chunk was listed: nothing to fetch or cut."""
        return self.fetch is None


class ChunkState(Enum):
    """Where a chunk in an engine's window stands."""

    # Every clip was complete when it was listed: its records are reused, nothing is fetched.
    COMPLETE = "complete"
    # Its zips are being downloaded; no clip has started (the local engine starts the cuts once they are verified).
    FETCHING = "fetching"
    # Its cuts are submitted (on Ray, at once: each waits for the download through its object ref).
    CUTTING = "cutting"
    # Its download failed: every clip is skipped with the slot's `failure`.
    FAILED = "failed"


@dataclass
class ChunkSlot:
    """A chunk in an engine's window, and the engine's handles on its work."""

    work: ChunkWork
    state: ChunkState
    # The download: a future (local) or an object ref (Ray); None for a COMPLETE chunk.
    fetched: Any = None
    # Per clip, in job order, the handle on its cut (a `pipeline.engines.pool.Task`, a Ray object ref), once CUTTING.
    clips: list[Any] = field(default_factory=list)
    # Why every clip is skipped (FAILED).
    failure: str | None = None
    # The node the chunk is pinned to (Ray).
    node: str | None = None
    # Other tasks released when the chunk is done (Ray: the clean-up task its download waited for).
    steps: tuple[Any, ...] = ()

    def cutting(self, clips: list[Any]) -> None:
        self.state, self.clips = ChunkState.CUTTING, clips

    def failed(self, reason: str) -> None:
        self.state, self.failure = ChunkState.FAILED, reason


def fetch_chunk(work: ChunkWork, retries: int) -> None:
    """Run `work.fetch`, trying again up to `retries` times (downloads resume); PipelineError if it keeps failing.
    An environment fault (full or read-only disk) is not retried: it raises `EnvironmentFault` and stops the run."""
    assert work.fetch is not None
    for attempt in range(retries + 1):
        try:
            work.fetch()
            return
        except Exception as err:  # noqa: BLE001 - any transfer failure is retried, then reported per clip
            if is_environment_fault(err):
                raise environment_fault(err) from None
            if attempt == retries:
                raise PipelineError(
                    f"{DOWNLOAD_FAILED} {work.chunk} failed after {retries + 1} attempt(s): {failure_reason(err)}"
                ) from None
            log.warning("chunk %d: download attempt %d failed (%s); retrying", work.chunk, attempt + 1, err)


def free_chunk(work: ChunkWork) -> int:
    """Delete a chunk's source zips unless they are kept; return the bytes freed."""
    return work.free() if work.free is not None else 0


def complete_chunk_results(work: ChunkWork, ops: ClipOps) -> ChunkResults:
    """(job, record) of a chunk whose clips were all complete when it was listed; then its leftover zips (of an
    interrupted run) are freed."""
    for job in work.jobs:
        yield job, ops.reused(job, ops.config) or ops.skipped(job, "clip record vanished during the run; re-run")
    free_chunk(work)


def after_retries(retries: int) -> str:
    """The end of a skip reason: "(after 1 retry)", "(after 2 retries)"."""
    return f"(after {retries} {'retry' if retries == 1 else 'retries'})"


def raise_environment_fault(err: BaseException | None) -> None:
    """Re-raise `err` as an `EnvironmentFault` if it is one (the run stops; nothing is recorded for the clips)."""
    if err is not None and is_environment_fault(err):
        raise environment_fault(err) from None


def failure_reason(err: BaseException) -> str:
    """One line for the manifest."""
    return f"{type(err).__name__}: {first_line(err)}" if str(err).strip() else type(err).__name__


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


__all__ = [
    "DOWNLOAD_FAILED",
    "ChunkResults",
    "ChunkSlot",
    "ChunkState",
    "ChunkWork",
    "ClipOps",
    "Engine",
    "OnInterrupt",
    "after_retries",
    "complete_chunk_results",
    "failure_reason",
    "fetch_chunk",
    "free_chunk",
    "raise_environment_fault",
]
