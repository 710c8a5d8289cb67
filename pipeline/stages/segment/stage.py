"""Stage 2: cut each clip's camera video into short segments and compute next-second motion targets.

Reads a downloaded directory (or a synthetic repository) in place: `features.csv` and `clip_index.parquet` say
where each clip's video, frame timestamps and egomotion live. Per clip: frame timestamps → segment windows
(docs/ARCHITECTURE.md, "Timing conventions") → targets (`pipeline.av.egomotion`) → one decode pass writing every
segment (`pipeline.av.video`) → a per-clip metadata file, written last, which marks the clip complete. A re-run
verifies that file (same settings, same input fingerprint, every mp4 present with its recorded size) and skips the
clip; a clip whose inputs changed since (`pipeline.av.zip_fingerprint`) is cut again, a skipped one too. Finally the
per-clip files of this run are aggregated into `metadata/segments.json`, `segments.parquet` and `manifest.json`.

Every bad input (missing member, corrupt video, frame count mismatch, NaNs or gaps in egomotion, a short clip)
skips the clip or the segment with a one-line reason in the manifest and the log; the run goes on. A run in
which every clip was skipped because its zip could not be read fails with that reason.

Runs may share an output directory: a clip is cut under a lock file (`cliplock`) next to its record. A clip
another live run holds is left to it, and this run waits for it where it comes (or cuts it itself if that
run died), so each run's segments.json is complete; a clip locked from another host is reported as "locked".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path

from pipeline.core.atomic import temp_sibling
from pipeline.core.errors import PipelineError
from pipeline.core.progress import NullProgress, ProgressSink
from pipeline.engines.base import ClipOps, Engine
from pipeline.engines.local import LocalEngine
from pipeline.stages.segment.clip import completed_record, process_clip_safe, skipped_record
from pipeline.stages.segment.config import MANIFEST_JSON, SegmentConfig
from pipeline.stages.segment.jobs import ClipJob, SegmentResult, list_jobs
from pipeline.stages.segment.outputs import metadata_dir, write_outputs

log = logging.getLogger(__name__)


def run(config: SegmentConfig, progress: ProgressSink | None = None, engine: Engine | None = None) -> SegmentResult:
    """Run the segment stage; returns counts. Raises PipelineError for bad arguments or an unusable input dir.

    `engine` runs the clips (default: a process pool of `config.workers` on this machine; `pipeline.engines.local`).
    """
    jobs = list_jobs(config)
    _check_writable(config.output_dir)
    engine = engine or LocalEngine(config.workers)
    log.info(
        "segment: %d clip(s) from %s (shard %d/%d), engine %s",
        len(jobs),
        config.input_dir,
        *config.shard,
        engine.describe(),
    )
    with engine:
        records = engine.map_clips(jobs, clip_ops(config))  # a process pool forks here, before the progress bar
        return aggregate(config, zip(jobs, records, strict=True), progress, total=len(jobs))


def clip_ops(config: SegmentConfig, verify_inputs: bool = True) -> ClipOps:
    """This stage's per-clip functions, for an engine. `verify_inputs=False`: a clip counts as complete from its
    record alone (`completed_record`), without reading its zips."""
    reused = completed_record if verify_inputs else partial(completed_record, verify_inputs=False)
    return ClipOps(config=config, cut=process_clip_safe, skipped=skipped_record, reused=reused)


def aggregate(
    config: SegmentConfig,
    results: Iterable[tuple[ClipJob, dict]],
    progress: ProgressSink | None = None,
    total: int | None = None,
) -> SegmentResult:
    """Write the aggregate files from (job, clip record) pairs, in clip order, as they arrive (`write_outputs`).

    A clip another run on this host is cutting is waited for where it comes. Raises PipelineError when every clip
    was skipped because its zip could not be read.
    """
    progress = progress or NullProgress()
    unreadable: set[str] | None = set()  # the reasons, while every clip so far was skipped for an unreadable zip

    def summaries() -> Iterator[tuple[ClipJob, dict]]:
        nonlocal unreadable
        for job, record in results:
            res = _summarise(_settle_locked(config, job, record))
            if unreadable is not None:
                unreadable = unreadable | {res["reason"]} if res["input_level"] else None
            progress.advance()
            yield job, res

    progress.start("segment clips", total=total)
    try:
        summary = write_outputs(config, summaries())
    finally:
        progress.finish()
    _fail_if_no_input_was_readable(config, summary.clips, unreadable)
    return summary


# Seconds between two looks at a clip another run on this host is cutting.
LOCK_POLL_S = 0.5


def _settle_locked(config: SegmentConfig, job: ClipJob, record: dict) -> dict:
    """Wait for a clip another live run on this host is cutting, then take it as that run left it: complete
    (reused), or cut here if it died first. A clip locked from another host is left "locked" for this run."""
    if record["status"] == "locked" and record.get("lock_local"):
        log.info("segment: waiting for 1 clip(s) another run on this host is cutting (%s)", job.clip_id)
    while record["status"] == "locked" and record.get("lock_local"):
        time.sleep(LOCK_POLL_S)
        record = process_clip_safe(job, config)
    return record


def _check_writable(output_dir: Path) -> None:
    """Refuse an output directory this process cannot write into, before any clip is tried."""
    clips = output_dir / "metadata" / "clips"
    try:
        clips.mkdir(parents=True, exist_ok=True)
        probe = temp_sibling(clips / "write_probe")
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise PipelineError(f"--output-dir {output_dir}: cannot write there ({err.strerror or err})") from None


def _fail_if_no_input_was_readable(config: SegmentConfig, n_clips: int, unreadable: set[str] | None) -> None:
    """Every clip skipped because a zip could not be read (`unreadable`: their reasons; None once a clip was not):
    the run failed (a user error), not an empty success."""
    if not n_clips or not unreadable:
        return
    reasons = sorted(unreadable)
    more = f" (and {len(reasons) - 1} other reason(s))" if len(reasons) > 1 else ""
    raise PipelineError(
        f"{reasons[0]}{more}: all {n_clips} clip(s) skipped; manifest in {metadata_dir(config) / MANIFEST_JSON}"
    )


def _summarise(record: dict) -> dict:
    """Log a clip's outcome; keep only what the manifest needs (segments are re-read from the clip file)."""
    if record["status"] in ("skipped", "locked"):
        log.warning("clip %s %s: %s", record["clip_id"], record["status"], record["reason"])
    else:
        for s in record.get("skipped_segments", []):
            log.warning("clip %s segment %d skipped: %s", record["clip_id"], s["segment_index"], s["reason"])
    for warning in record.get("warnings", []):
        log.warning("clip %s: %s", record["clip_id"], warning)
    return {
        "status": record["status"],
        "reason": record["reason"],
        "segments": len(record["segments"]),
        "skipped_segments": record["skipped_segments"],
        "warnings": record.get("warnings", []),
        "input_level": bool(record.get("input_level")),
        "lock_local": bool(record.get("lock_local")),
        "reused": bool(record.get("reused")),
    }


__all__ = ["aggregate", "clip_ops", "run"]
