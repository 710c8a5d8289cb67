"""Transfers of the download stage: each file into its kept partial file through huggingface_hub's `http_get`
(Range resume, transient HTTP statuses retried), verified before it is renamed into place; files in parallel
threads with one byte progress bar; disk space checked first.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pipeline.core.environment_errors import EnvironmentFault, environment_fault, is_environment_fault
from pipeline.core.errors import PipelineError
from pipeline.core.progress import BYTES, NullProgress, ProgressSink
from pipeline.stages.download.config import DownloadConfig
from pipeline.stages.download.files import FileResult, LocalState, RemoteFile, file_matches
from pipeline.stages.download.hub_access import Hub, hub_error_to_pipeline_error, is_auth_error, is_disk_full

log = logging.getLogger(__name__)

# headroom kept free on the disk beyond the bytes still to download
DISK_MARGIN_BYTES = 256 * 1024 * 1024
GB = 1e9
# Server errors worth another try (the Hub's front ends answer these on overload); 4xx are not retried.
TRANSIENT_STATUS = (500, 502, 503, 504)
# Retries of a file after a transient status, and the pause before the first one (doubled each time), s.
HTTP_RETRIES = 3
RETRY_PAUSE_S = 1.0


class _Cancelled(BaseException):
    """Raised inside a transfer to stop it (Ctrl-C or a fatal error elsewhere); its partial file is kept."""


class _ByteProgress:
    """A tqdm stand-in that huggingface_hub's `http_get` drives; forwards byte counts to a `ProgressSink`.

    It is also where in-flight transfers notice a stop request (between 10 MB blocks).
    """

    sink: ProgressSink = NullProgress()
    lock = threading.Lock()
    stop = threading.Event()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> _ByteProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: int | float | None = 1) -> None:
        if _ByteProgress.stop.is_set():
            raise _Cancelled
        if n:
            with _ByteProgress.lock:
                _ByteProgress.sink.advance(int(n))

    @staticmethod
    def rewind(n: int) -> None:
        """Take back `n` bytes counted for a transfer whose bytes were thrown away (a hash mismatch)."""
        with _ByteProgress.lock:
            _ByteProgress.sink.advance(-n)


def stop_transfers() -> None:
    """Ask the transfers running in other threads of this process to stop at their next block (Ctrl-C)."""
    _ByteProgress.stop.set()


def _status(exc: BaseException) -> int | None:
    return getattr(getattr(exc, "response", None), "status_code", None)


def disk_full_error(partial: Path, repo_path: str) -> PipelineError:
    kept = partial.stat().st_size if partial.exists() else 0
    return EnvironmentFault(
        f"{partial.parent}: no space left on device while writing {repo_path} ({kept} bytes kept); "
        "free some space and re-run (it resumes)"
    )


def _open_partial(path: Path):
    """The partial file, opened for appending (one place, so tests can fill the disk)."""
    return path.open("ab")


def _transfer(hub: Hub, partial: Path, remote: RemoteFile, url: str) -> int:
    """Append the rest of `remote` to `partial` (resuming), retrying transient HTTP statuses; bytes fetched."""
    from huggingface_hub.file_download import http_get

    retry = 0
    while True:
        resume = partial.stat().st_size if partial.exists() else 0
        if resume > remote.size:
            partial.unlink()
            resume = 0
        if resume:
            log.info("resuming %s at byte %d of %d", remote.path, resume, remote.size)
        try:
            with _open_partial(partial) as f:
                http_get(
                    url,
                    f,
                    resume_size=resume,
                    headers=hub.headers(),
                    expected_size=remote.size,
                    displayed_filename=remote.path,
                    tqdm_class=_ByteProgress,  # type: ignore[arg-type]
                )
            return remote.size - resume
        except Exception as exc:
            if _status(exc) not in TRANSIENT_STATUS or retry == HTTP_RETRIES:
                raise
            pause = RETRY_PAUSE_S * 2**retry
            log.warning("%s: HTTP %s; retrying in %.0f s", remote.path, _status(exc), pause)
            time.sleep(pause)
            retry += 1


def fetch_one(hub: Hub, state: LocalState, remote: RemoteFile, commit: str) -> FileResult:
    """Download one file into its partial file (resuming), verify it, rename it into place."""
    partial = state.partial(remote)
    final = state.final(remote)
    try:
        partial.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(partial, remote.path) from None
        if is_environment_fault(exc):
            raise environment_fault(exc, partial.parent) from None
        raise
    url = hub.url(remote.path, commit)
    fetched = 0
    for attempt in (1, 2):
        try:
            fetched += _transfer(hub, partial, remote, url)
        except Exception as exc:  # noqa: BLE001 - reported per file; auth errors and a full disk stop the run
            if is_auth_error(exc):
                raise hub_error_to_pipeline_error(exc, hub.config, remote.path) from None
            if is_disk_full(exc):
                raise disk_full_error(partial, remote.path) from None
            if is_environment_fault(exc):
                raise environment_fault(exc, partial.parent) from None
            status = _status(exc)
            reason = f"HTTP {status}" if status else f"network failure ({type(exc).__name__}) after retries"
            kept = partial.stat().st_size if partial.exists() else 0
            log.warning("%s: %s (%d bytes kept for a re-run)", remote.path, reason, kept)
            return FileResult(remote.path, remote.size, remote.etag, "failed", False, reason, fetched)
        if file_matches(partial, remote):
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, final)
            state.mark_verified(remote)
            return FileResult(remote.path, remote.size, remote.etag, "downloaded", True, None, fetched)
        log.warning("%s: size or hash mismatch after download (attempt %d); fetching it again", remote.path, attempt)
        # The whole file is fetched again: count its bytes once on the bar (the resumed part was never on it).
        _ByteProgress.rewind(remote.size)
        partial.unlink(missing_ok=True)
    reason = "size or hash differs from the Hub's after two downloads"
    return FileResult(remote.path, remote.size, remote.etag, "failed", False, reason, fetched)


def ensure_files(
    hub: Hub,
    state: LocalState,
    remotes: Sequence[RemoteFile],
    commit: str,
    config: DownloadConfig,
    progress: ProgressSink,
    description: str,
    known: dict[str, tuple[bool, str]] | None = None,
) -> list[FileResult]:
    """Skip complete files, download the rest in parallel; results in the order of `remotes`.

    `known`: completeness already checked by the caller (path -> `is_complete` result), so no file is hashed twice.
    """
    results: dict[str, FileResult] = {}
    todo: list[RemoteFile] = []
    for remote in remotes:
        if config.redownload:
            state.forget(remote)
            todo.append(remote)
            continue
        complete, how = (known or {}).get(remote.path) or state.is_complete(remote, config.verify)
        if complete:
            results[remote.path] = FileResult(remote.path, remote.size, remote.etag, "complete", True, how)
        else:
            todo.append(remote)
    if todo:
        remaining = sum(r.size - partial_size(state, r) for r in todo)
        progress.start(description, total=remaining, unit=BYTES)
        _ByteProgress.sink = progress
        _ByteProgress.stop.clear()
        pool = ThreadPoolExecutor(max_workers=min(config.max_workers, len(todo)))
        try:
            futures = [pool.submit(fetch_one, hub, state, r, commit) for r in todo]
            for future in futures:
                result = future.result()
                results[result.path] = result
        except BaseException:
            # Ctrl-C or a gated-repo error: stop the other transfers at their next block, keeping partial files
            _ByteProgress.stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            _ByteProgress.stop.clear()
            _ByteProgress.sink = NullProgress()
            progress.finish()
    return [results[r.path] for r in remotes]


def partial_size(state: LocalState, remote: RemoteFile) -> int:
    partial = state.partial(remote)
    return min(partial.stat().st_size, remote.size) if partial.exists() else 0


def check_disk(output_dir: Path, needed: int) -> None:
    probe = output_dir
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed + DISK_MARGIN_BYTES > free:
        raise PipelineError(
            f"--output-dir {output_dir}: not enough disk space (need {needed / GB:.2f} GB "
            f"+ {DISK_MARGIN_BYTES / GB:.2f} GB margin, {free / GB:.2f} GB free)"
        )


__all__ = [
    "GB",
    "HTTP_RETRIES",
    "check_disk",
    "disk_full_error",
    "ensure_files",
    "fetch_one",
    "partial_size",
    "stop_transfers",
]
