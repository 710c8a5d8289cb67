"""Stage 2: cut each clip's camera video into short segments and compute next-second motion targets.

Reads a downloaded directory (or a synthetic repository) in place: `features.csv` and `clip_index.parquet` say
where each clip's video, frame timestamps and egomotion live. Per clip: frame timestamps → segment windows
(docs/ARCHITECTURE.md, "Timing conventions") → targets (`pipeline.egomotion`) → one decode pass writing every
segment (`pipeline.video`) → a per-clip metadata file, written last, which marks the clip complete. A re-run
verifies that file (same settings, same input fingerprint, every mp4 present with its recorded size) and skips the
clip; a clip whose inputs changed since (`pipeline.zip_fingerprint`) is cut again, a skipped one too. Finally the
per-clip files of this run are aggregated into `metadata/segments.json`, `segments.parquet` and `manifest.json`.

Every bad input (missing member, corrupt video, frame count mismatch, NaNs or gaps in egomotion, a short clip)
skips the clip or the segment with a one-line reason in the manifest and the log; the run goes on. A run in
which every clip was skipped because its zip could not be read fails with that reason.

Runs may share an output directory: a clip is cut under a lock file (`pipeline.cliplock`) next to its record. A
clip another live run holds is left to it, and at the end this run waits for it (or cuts it itself if that run
died), so each run's segments.json is complete; a clip locked from another host is reported as "locked".
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from pipeline.atomic import temp_sibling
from pipeline.errors import PipelineError
from pipeline.progress import NullProgress, ProgressSink
from pipeline.segment_clip import process_clip_safe
from pipeline.segment_config import MANIFEST_JSON, ClipJob, SegmentConfig, SegmentRunSummary, list_jobs
from pipeline.segment_outputs import metadata_dir, write_outputs

log = logging.getLogger(__name__)


def run(config: SegmentConfig, progress: ProgressSink | None = None) -> SegmentRunSummary:
    """Run the segment stage; returns counts. Raises PipelineError for bad arguments or an unusable input dir."""
    progress = progress or NullProgress()
    jobs = list_jobs(config)
    _check_writable(config.output_dir)
    log.info(
        "segment: %d clip(s) from %s (shard %d/%d), %d worker(s)",
        len(jobs),
        config.input_dir,
        *config.shard,
        config.workers,
    )
    records: dict[str, dict] = {}
    if config.workers == 1 or len(jobs) <= 1:
        progress.start("segment clips", total=len(jobs))
        try:
            for job in jobs:
                records[job.clip_id] = _summarise(process_clip_safe(job, config))
                progress.advance()
        finally:
            progress.finish()
    else:
        with ProcessPoolExecutor(max_workers=min(config.workers, len(jobs)), mp_context=_pool_context()) as pool:
            # Submitting starts the workers: do it before the progress bar starts its refresh thread (fork).
            futures = {pool.submit(process_clip_safe, job, config): job for job in jobs}
            progress.start("segment clips", total=len(jobs))
            try:
                for future in as_completed(futures):
                    records[futures[future].clip_id] = _summarise(future.result())
                    progress.advance()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            finally:
                progress.finish()
    _settle_locked(config, jobs, records)
    summary = write_outputs(config, jobs, records)
    _fail_if_no_input_was_readable(config, records)
    return summary


# Seconds between two looks at the clips another run on this host is cutting.
LOCK_POLL_S = 0.5


def _settle_locked(config: SegmentConfig, jobs: Sequence[ClipJob], records: dict[str, dict]) -> None:
    """Wait for the clips another live run on this host was cutting, then take them as it left them: complete
    (reused), or cut here if it died first. Clips locked from another host are left "locked" for this run."""
    pending = [j for j in jobs if records[j.clip_id]["status"] == "locked" and records[j.clip_id]["lock_local"]]
    if pending:
        log.info("segment: waiting for %d clip(s) another run on this host is cutting", len(pending))
    while pending:
        time.sleep(LOCK_POLL_S)
        still = []
        for job in pending:
            record = process_clip_safe(job, config)
            if record["status"] == "locked" and record["lock_local"]:
                still.append(job)
            else:
                records[job.clip_id] = _summarise(record)
        pending = still


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


def _fail_if_no_input_was_readable(config: SegmentConfig, records: dict[str, dict]) -> None:
    """Every clip skipped because a zip could not be read: the run failed (a user error), not an empty success."""
    if not records or not all(r["status"] == "skipped" and r["input_level"] for r in records.values()):
        return
    reasons = sorted({r["reason"] for r in records.values()})
    more = f" (and {len(reasons) - 1} other reason(s))" if len(reasons) > 1 else ""
    raise PipelineError(
        f"{reasons[0]}{more}: all {len(records)} clip(s) skipped; manifest in {metadata_dir(config) / MANIFEST_JSON}"
    )


def _pool_context() -> multiprocessing.context.BaseContext:
    """fork where the platform has it (workers start without re-importing pandas/PyAV), else spawn.

    Workers are created at the first submit, while the parent runs no other thread and has not touched libav.
    """
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if sys.platform == "linux" and "fork" in methods else "spawn")


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


__all__ = ["run"]
