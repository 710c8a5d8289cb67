"""`pipeline prepare`: from the Hub to segments, chunk by chunk, on this machine or on a Ray cluster.

For each chunk: its egomotion and camera zips are fetched with `pipeline.download` (verified, resumable), every
clip is cut by the segment stage's own per-clip worker, and the zips are deleted (unless `keep_source`). At most
`max_chunks_in_flight` chunks of source are on disk at once (per node on Ray). A chunk whose clips are all complete
is passed over before any data request: its clip records are trusted (their zips were verified against the
pinned commit when they were cut, and are gone since). The output is exactly `pipeline segment`'s (video_segments/,
metadata/segments.json, segments.parquet, manifest.json), so `build-dataset` reads it unchanged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import partial

from pipeline import catalog, download
from pipeline.download_config import DownloadConfig
from pipeline.download_files import delete_files
from pipeline.download_transfer import stop_transfers
from pipeline.engines import ChunkWork, Engine, LocalEngine
from pipeline.errors import PipelineError
from pipeline.progress import ProgressSink
from pipeline.segment import aggregate, clip_ops
from pipeline.segment_clip import completed_record
from pipeline.segment_config import EGOMOTION_FEATURE, SegmentConfig, SegmentResult, clip_jobs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of `pipeline prepare`: which chunks, where from, and the segment settings."""

    # Segment settings; its input_dir is the source directory (--source-dir) and output_dir the segments' root.
    segment: SegmentConfig = field(default_factory=lambda: SegmentConfig(max_clips=None))
    # Chunk id specs as typed: "0001", "0 1 2", "0-9", "3,5-7" (ignored with all_chunks).
    chunks: tuple[str, ...] = ()
    # Every chunk listed in clip_index.parquet (of the segment split, if given).
    all_chunks: bool = False
    # Branch, tag or commit of the dataset repo (resolved once: every chunk comes from the same commit).
    revision: str = "main"
    # Dataset repo on the Hub.
    repo_id: str = catalog.REPO_ID
    # Parallel file transfers within a chunk.
    transfers: int = 8
    # Keep each chunk's source zips after it is cut (default: delete them).
    keep_source: bool = False
    # Chunks whose source is on disk at once (per node on Ray).
    max_chunks_in_flight: int = 2
    # Hub base URL; None: $HF_ENDPOINT, else https://huggingface.co.
    endpoint: str | None = None
    # Access token; None: $HF_TOKEN or the `hf auth login` token. Never written to disk or logs.
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.segment.max_clips is not None:
            raise PipelineError("prepare cuts whole chunks: segment max_clips must be None")
        if self.segment.shard != (0, 1):
            raise PipelineError("prepare: --shard is not supported (use a Ray cluster to spread the work)")
        if not 1 <= self.max_chunks_in_flight <= 64:
            raise PipelineError(f"--max-chunks-in-flight {self.max_chunks_in_flight}: must be in 1..64")

    def download_config(self) -> DownloadConfig:
        """The download of the camera and egomotion features of the selected chunks into the source directory."""
        return DownloadConfig(
            output_dir=self.segment.input_dir,
            chunks=self.chunks,
            all_chunks=self.all_chunks,
            features=(self.segment.camera, EGOMOTION_FEATURE),
            split=self.segment.split,
            revision=self.revision,
            repo_id=self.repo_id,
            max_workers=self.transfers,
            yes=True,  # at most max_chunks_in_flight chunks are ever on disk
            endpoint=self.endpoint or os.environ.get("HF_ENDPOINT") or None,
            token=self.token,
        )


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
        summary = aggregate(seg, results, progress, total=len(table))
    if complete:
        log.info("prepare: %d chunk(s) were already complete: %s", len(complete), catalog.format_ranges(complete))
    return PrepareResult(commit=commit, chunks=chunk_ids, complete_chunks=complete, segments=summary)


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
        paths = tuple(catalog.chunk_file(ds.feature(name), chunk) for name in (seg.camera, EGOMOTION_FEATURE))
        # also frees what an interrupted run left of a chunk that is complete now
        free = None if keep_source else partial(delete_files, dl.output_dir, paths)
        fetch = partial(download.run, replace(dl, chunks=(str(chunk),), all_chunks=False))
        if all(completed_record(job, seg, verify_inputs=False) is not None for job in jobs):
            complete.append(chunk)
            fetch = None
        yield ChunkWork(chunk=chunk, jobs=jobs, fetch=fetch, free=free)


__all__ = ["PrepareConfig", "PrepareResult", "run"]
