"""Settings of `pipeline prepare`: `PrepareConfig` (which chunks, where from, and the segment settings), checked
when it is made. No I/O, and light to import (the command line reads it for its options)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pipeline.av import catalog
from pipeline.core.errors import PipelineError
from pipeline.core.options import group, parse_fields, setting
from pipeline.stages.download.config import DownloadConfig
from pipeline.stages.segment.config import EGOMOTION_FEATURE, SegmentConfig

# The segment settings `pipeline prepare` offers, with their help where it differs from `pipeline segment`'s.
_SEGMENT_OPTIONS = {
    "split": {"help": "train, val or test: only chunks and clips of that split."},
    "input_dir": {
        "help": "Where a chunk's source zips live while it is cut.",
        "flags": ("--source-dir", "--source_dir"),
    },
    "output_dir": {},
    "camera": {},
    "cameras": {},
    "target_hz": {},
    "horizon_s": {},
    "target_kind": {},
    "history_steps": {},
    "history_hz": {},
    "frames_per_camera": {},
    "frame_spacing_s": {},
    "window_s": {},
    "stride_s": {},
    "size": {},
    "workers": {"help": "Processes over clips (--engine local)."},
    "fast_decode": {},
    "retry_skipped": {},
}


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of `pipeline prepare`: which chunks, where from, and the segment settings."""

    # Chunk id specs as typed: "0001", "0 1 2", "0-9", "3,5-7" (ignored with all_chunks).
    chunks: tuple[str, ...] = setting(
        (),
        help="Chunk ids: repeat, list (space or comma separated) or range 0-9.",
        flags=("--chunk", "--chunks"),
        cli_type=list[str] | None,
        cli_default=None,
        parse=tuple,
    )
    # Of the segment split, if given.
    all_chunks: bool = setting(False, help="Every chunk in clip_index.parquet.", flags=("--all",))
    # Resolved once: every chunk comes from the same commit.
    revision: str = setting("main", help="Branch, tag or commit of the dataset.")
    repo_id: str = setting(catalog.REPO_ID, help="Dataset repo on the Hub.")
    keep_source: bool = setting(False, help="Keep each chunk's zips after it is cut.")
    # Per node on Ray.
    max_chunks_in_flight: int = setting(2, help="Chunks of source on disk at once (per node).")
    # Within a chunk.
    transfers: int = setting(8, help="Parallel file transfers.", flags=("--max-workers", "--max_workers"))
    # Segment settings; its input_dir is the source directory (--source-dir) and output_dir the segments' root.
    segment: SegmentConfig = group(
        SegmentConfig, prefix="", expose=_SEGMENT_OPTIONS, default_factory=lambda: SegmentConfig(max_clips=None)
    )
    # Hub base URL; None: $HF_ENDPOINT, else https://huggingface.co.
    endpoint: str | None = None
    # Access token; None: $HF_TOKEN or the `hf auth login` token. Never written to disk or logs.
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        parse_fields(self)
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
            features=(*self.segment.camera_names, EGOMOTION_FEATURE),
            split=self.segment.split,
            revision=self.revision,
            repo_id=self.repo_id,
            max_workers=self.transfers,
            yes=True,  # at most max_chunks_in_flight chunks are ever on disk
            endpoint=self.endpoint or os.environ.get("HF_ENDPOINT") or None,
            token=self.token,
        )


__all__ = ["PrepareConfig"]
