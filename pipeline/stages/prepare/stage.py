"""`pipeline prepare`: from the Hub to segments, chunk by chunk, on this machine or on a Ray cluster.

For each chunk: its egomotion and camera zips are fetched with the download stage (verified, resumable), every clip
is cut by the segment stage's own per-clip worker, and the zips are deleted (unless `keep_source`). At most
`max_chunks_in_flight` chunks of source are on disk at once (per node on Ray). A chunk whose clips are all complete
is passed over before any data request: its clip records are trusted (their zips were verified against the
pinned commit when they were cut, and are gone since). The output is exactly `pipeline segment`'s (video_segments/,
metadata/segments.json, segments.parquet, manifest.json), so `build-dataset` reads it unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial

from pipeline.av import catalog
from pipeline.core.errors import PipelineError
from pipeline.core.progress import ProgressSink
from pipeline.engines.base import DOWNLOAD_FAILED, ChunkResults, ChunkWork, Engine
from pipeline.engines.local import LocalEngine
from pipeline.stages.download import stage as download
from pipeline.stages.download.config import DownloadConfig
from pipeline.stages.download.files import delete_files
from pipeline.stages.download.transfer import stop_transfers
from pipeline.stages.prepare.config import PrepareConfig
from pipeline.stages.segment.clip import completed_record
from pipeline.stages.segment.config import EGOMOTION_FEATURE, SegmentConfig
from pipeline.stages.segment.jobs import SegmentResult, clip_jobs
from pipeline.stages.segment.stage import aggregate, clip_ops

log = logging.getLogger(__name__)


@dataclass
class PrepareResult:
    """What `run` did."""

    # Dataset commit every chunk came from.
    commit: str
    # Chunks of the run.
    chunks: list[int]
    # Chunks passed over because every clip was already complete.
    complete_chunks: list[int]
    # The segment accounting (clips, done, skipped, reused, segments, metadata_dir).
    segments: SegmentResult


def run(config: PrepareConfig, progress: ProgressSink | None = None, engine: Engine | None = None) -> PrepareResult:
    """Prepare the selected chunks; returns counts. Raises PipelineError for bad arguments or an unusable repo."""
    dl = config.download_config()
    commit = download.fetch_index(dl)
    ds = catalog.open_dataset_dir(dl.output_dir)
    chunk_ids, _, _ = download.chunk_selection(dl, ds.clip_index)
    seg = replace(config.segment, chunks=tuple(chunk_ids))
    table = ds.clip_index.table
    table = table[table["chunk"].isin(chunk_ids)]
    if seg.split is not None:
        table = table[table["split"] == seg.split]
    engine = engine or LocalEngine(seg.workers)
    log.info(
        "prepare: %d chunk(s), %d clip(s) of %s @ %s; engine %s, %d chunk(s) of source in flight",
        len(chunk_ids),
        len(table),
        config.repo_id,
        commit[:12],
        engine.describe(),
        config.max_chunks_in_flight,
    )
    complete: list[int] = []
    works = _chunk_works(ds, seg, replace(dl, revision=commit), chunk_ids, config.keep_source, complete)
    with engine:
        results = engine.run_chunks(
            works,
            clip_ops(seg, verify_inputs=False),
            config.max_chunks_in_flight,
            on_interrupt=stop_transfers,
        )
        downloads = _DownloadOutcomes()
        summary = aggregate(seg, downloads.watch(results), progress, total=len(table))
    downloads.fail_if_all_failed()
    if complete:
        log.info("prepare: %d chunk(s) were already complete: %s", len(complete), catalog.format_ranges(complete))
    return PrepareResult(commit=commit, chunks=chunk_ids, complete_chunks=complete, segments=summary)


class _DownloadOutcomes:
    """Which chunks were downloaded and which failed: a run in which every download failed is an error (exit 2),
    not "0 segments"."""

    def __init__(self) -> None:
        self.fetched: set[int] = set()
        self.failed: dict[int, str] = {}

    def watch(self, results: ChunkResults) -> ChunkResults:
        for job, record in results:
            reason = str(record.get("reason") or "")
            if record["status"] == "skipped" and DOWNLOAD_FAILED in reason:
                self.failed.setdefault(job.chunk, reason)
            elif not record.get("reused"):
                self.fetched.add(job.chunk)
            yield job, record

    def fail_if_all_failed(self) -> None:
        if self.failed and not self.fetched - set(self.failed):
            first = next(iter(self.failed.values()))
            raise PipelineError(f"every chunk download failed ({len(self.failed)} chunk(s)); first: {first}")


def _chunk_works(
    ds: catalog.DatasetDir,
    seg: SegmentConfig,
    dl: DownloadConfig,
    chunk_ids: list[int],
    keep_source: bool,
    complete: list[int],
) -> Iterator[ChunkWork]:
    """One `ChunkWork` per chunk, made when the engine asks for it (so completeness is checked just in time)."""
    for chunk in chunk_ids:
        jobs = tuple(clip_jobs(ds, seg, [chunk]))
        names = (*seg.camera_names, EGOMOTION_FEATURE)
        paths = tuple(catalog.chunk_file(ds.feature(name), chunk) for name in names)
        # also frees what an interrupted run left of a chunk that is complete now
        free = None if keep_source else partial(delete_files, dl.output_dir, paths)
        fetch = partial(download.run, replace(dl, chunks=(str(chunk),), all_chunks=False))
        if all(completed_record(job, seg, verify_inputs=False) is not None for job in jobs):
            complete.append(chunk)
            fetch = None
        yield ChunkWork(chunk=chunk, jobs=jobs, fetch=fetch, free=free)


__all__ = ["PrepareConfig", "PrepareResult", "run"]
