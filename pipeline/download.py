"""Stage 1: download dataset chunks from the Hub into `output_dir`, at the repository's own paths.

Driven by the repository's `features.csv` and `clip_index.parquet` (fetched first): every chunk file path is derived
from them. Sizes and hashes come from the Hub's paths-info API; each file is verified (size, and sha256 for LFS
files or the git blob sha1 for plain files) before it is renamed into place, and a re-run skips files that are
already complete without any data request.

Transfers go through huggingface_hub's `http_get` (Range resume, 5 retries on dropped connections and timeouts);
answers 500/502/503/504 are retried here, `HTTP_RETRIES` times with a growing pause. A full disk stops the run with
one line (the partial files are kept). We keep our own
partial file under `output_dir/.cache/pipeline/download/` rather than calling `hf_hub_download`, because
huggingface_hub 2.4 deletes its per-process temp file when a download fails, so an interrupted multi-GB zip would
start again from zero; with a kept partial file, a re-run continues with `Range: bytes=N-`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline import atomic, catalog
from pipeline.errors import PipelineError
from pipeline.progress import BYTES, NullProgress, ProgressSink

logger = logging.getLogger(__name__)

DEFAULT_REPO_ID = "nvidia/PhysicalAI-Autonomous-Vehicles"
MANIFEST_NAME = "download_manifest.json"
CACHE_DIR = Path(".cache") / "pipeline" / "download"
# paths-info requests are batched (the Hub answers at most about 1000 paths per call)
PATHS_INFO_BATCH = 500
# headroom kept free on the disk beyond the bytes still to download
DISK_MARGIN_BYTES = 256 * 1024 * 1024
_HASH_BLOCK = 4 * 1024 * 1024
GB = 1e9
# Server errors worth another try (the Hub's front ends answer these on overload); 4xx are not retried.
TRANSIENT_STATUS = (500, 502, 503, 504)
# Retries of a file after a transient status, and the pause before the first one (doubled each time), s.
HTTP_RETRIES = 3
RETRY_PAUSE_S = 1.0


@dataclass
class DownloadConfig:
    """Options of `pipeline download` (see `--help`)."""

    # where files go, at their repo paths
    output_dir: Path = Path("physical_ai_data")
    # chunk id specs as typed: "0001", "0 1 2", "0-9", "3,5-7" (ignored with all_chunks)
    chunks: tuple[str, ...] = ()
    # every chunk listed in clip_index.parquet (of `split`, if given)
    all_chunks: bool = False
    # feature names from features.csv
    features: tuple[str, ...] = catalog.DEFAULT_FEATURES
    # train / val / test: keep only chunks holding clips of that split (their clip ids go in the manifest)
    split: str | None = None
    # branch, tag or commit of the dataset repo
    revision: str = "main"
    # dataset repo on the Hub
    repo_id: str = DEFAULT_REPO_ID
    # parallel file transfers
    max_workers: int = 8
    # re-download files even if complete
    force: bool = False
    # re-hash every local file instead of trusting the size + mtime recorded when it was verified (reads every byte)
    verify: bool = False
    # proceed without asking above the size threshold
    yes: bool = False
    # ask (or, unattended, refuse without --yes) when more than this many GB would be downloaded
    confirm_threshold_gb: float = 50.0
    # Hub base URL; None: $HF_ENDPOINT, else https://huggingface.co (read at run time, not at import)
    endpoint: str | None = None
    # access token; None: $HF_TOKEN or the `hf auth login` token. Never written to disk or logs.
    token: str | None = field(default=None, repr=False)
    # parsed from `chunks`: inclusive (first, last) ranges, checked against clip_index before they are expanded;
    # derived, not an input
    chunk_ranges: list[tuple[int, int]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        self.chunks = tuple(self.chunks)
        self.features = tuple(catalog.split_feature_names(self.features))
        if not self.all_chunks and not self.chunks:
            raise PipelineError("--chunk: give chunk ids (e.g. --chunk 0 or --chunk 0-9) or --all")
        if self.all_chunks and self.chunks:
            raise PipelineError("--all: cannot be combined with --chunk")
        if not self.features:
            raise PipelineError("--features: give at least one feature name")
        if self.split is not None and self.split not in catalog.SPLITS:
            raise PipelineError(f"--split {self.split!r}: expected one of {', '.join(catalog.SPLITS)}")
        if self.max_workers < 1:
            raise PipelineError(f"--max-workers {self.max_workers}: must be >= 1")
        if not self.confirm_threshold_gb > 0:
            raise PipelineError(f"--confirm-threshold-gb {self.confirm_threshold_gb}: must be > 0")
        if self.repo_id.count("/") != 1:
            raise PipelineError(f"--repo-id {self.repo_id!r}: expected namespace/name")
        if not self.revision:
            raise PipelineError("--revision: must not be empty")
        self.chunk_ranges = catalog.parse_chunk_ranges(self.chunks)

    def to_json(self) -> dict[str, Any]:
        """The resolved config for the manifest (the token is never written)."""
        out = asdict(self)
        out.pop("token")
        out["output_dir"] = str(self.output_dir)
        out["chunks"] = list(self.chunks)
        out["features"] = list(self.features)
        return out


@dataclass(frozen=True)
class RemoteFile:
    """A file of the Hub repo at the resolved commit, as paths-info describes it."""

    # repo path
    path: str
    # bytes
    size: int
    # git blob id (sha1 hex)
    blob_id: str
    # sha256 hex of the content for LFS files, else None
    sha256: str | None

    @property
    def etag(self) -> str:
        return self.sha256 or self.blob_id


@dataclass
class FileResult:
    """What happened to one file (a row of the manifest's `files`)."""

    # repo path (also the path under output_dir)
    path: str
    # bytes
    size: int
    # sha256 (LFS) or git blob sha1 the file was checked against
    expected_hash: str
    # "downloaded", "complete" (already there), "failed"
    status: str
    # whether size and hash were checked and matched
    verified: bool
    # why it was skipped or failed; None when downloaded
    reason: str | None = None
    # bytes fetched by this run
    bytes_fetched: int = 0


@dataclass
class DownloadResult:
    """Summary returned by `run` (also written as `download_manifest.json`)."""

    # repo commit the files were taken from
    commit: str
    # chunk ids downloaded
    chunks: list[int]
    # feature names downloaded
    features: list[str]
    # one row per file
    files: list[FileResult]
    # chunks or files left out and why: [{"chunk"|"path": ..., "reason": ...}]
    skipped: list[dict[str, Any]]
    # with --split: chunk id -> clip ids of that split in it
    split_clips: dict[int, list[str]]
    # bytes of all selected files
    total_bytes: int
    # bytes still to fetch when the run started
    to_download_bytes: int
    # path of the manifest
    manifest_path: Path

    @property
    def downloaded(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "downloaded"]

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]


# ---------------------------------------------------------------------------------------------------------------
# local verification (no network)


def git_blob_sha1_of_file(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.sha1(b"blob %d\0" % size)
    with path.open("rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def file_matches(path: Path, remote: RemoteFile) -> bool:
    """Whether `path` has `remote`'s size and hash (sha256 for LFS files, git blob sha1 otherwise)."""
    if not path.is_file() or path.stat().st_size != remote.size:
        return False
    if remote.sha256 is not None:
        return sha256_of_file(path) == remote.sha256
    return git_blob_sha1_of_file(path) == remote.blob_id


def partial_path(output_dir: Path, repo_path: str, etag: str) -> Path:
    """Where an unfinished download of `repo_path` (content hash `etag`) is kept between runs."""
    return Path(output_dir) / CACHE_DIR / f"{repo_path}.{etag[:16]}.incomplete"


class _LocalState:
    """Paths and verification markers of one output directory."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.cache = output_dir / CACHE_DIR

    def final(self, remote: RemoteFile) -> Path:
        return self.output_dir / remote.path

    def partial(self, remote: RemoteFile) -> Path:
        return partial_path(self.output_dir, remote.path, remote.etag)

    def marker(self, remote: RemoteFile) -> Path:
        return self.cache / f"{remote.path}.verified.json"

    def is_complete(self, remote: RemoteFile, verify: bool = False) -> tuple[bool, str]:
        """(complete, how): a file whose marker matches its size/mtime is not re-hashed (unless `verify`)."""
        final = self.final(remote)
        if not final.is_file():
            return False, "missing"
        stat = final.stat()
        if stat.st_size != remote.size:
            return False, f"local size {stat.st_size} != {remote.size}"
        try:
            mark = json.loads(self.marker(remote).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            mark = None
        if not verify and mark == {"etag": remote.etag, "size": remote.size, "mtime_ns": stat.st_mtime_ns}:
            return True, "already complete (verified by an earlier run)"
        if file_matches(final, remote):
            self.mark_verified(remote)
            return True, "already complete (hash checked now)"
        return False, "local file differs from the Hub"

    def mark_verified(self, remote: RemoteFile) -> None:
        stat = self.final(remote).stat()
        atomic.write_json(
            self.marker(remote), {"etag": remote.etag, "size": remote.size, "mtime_ns": stat.st_mtime_ns}
        )

    def forget(self, remote: RemoteFile) -> None:
        for path in (self.partial(remote), self.marker(remote)):
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------------------
# Hub access


class _Hub:
    """The huggingface_hub calls this stage makes, with errors turned into one-line `PipelineError`s."""

    def __init__(self, config: DownloadConfig) -> None:
        from huggingface_hub import HfApi

        self.config = config
        from huggingface_hub import constants

        # HF_ENDPOINT is read now, not when huggingface_hub was imported
        self.endpoint = (config.endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
        self.api = HfApi(endpoint=self.endpoint, token=config.token)
        self.repo_id = config.repo_id

    def errors(self, what: str):
        return _hub_errors(self.config, what)

    def resolve_commit(self) -> str:
        with self.errors("resolving the revision"):
            info = self.api.dataset_info(self.repo_id, revision=self.config.revision)
        if not info.sha:
            raise PipelineError(f"--revision {self.config.revision}: the Hub returned no commit id")
        return info.sha

    def paths_info(self, paths: Sequence[str], commit: str) -> dict[str, RemoteFile]:
        from huggingface_hub.hf_api import RepoFile

        out: dict[str, RemoteFile] = {}
        for start in range(0, len(paths), PATHS_INFO_BATCH):
            batch = list(paths[start : start + PATHS_INFO_BATCH])
            with self.errors("listing file sizes"):
                infos = self.api.get_paths_info(self.repo_id, batch, revision=commit, repo_type="dataset")
            for info in infos:
                if isinstance(info, RepoFile):
                    out[info.path] = RemoteFile(
                        path=info.path,
                        size=int(info.size),
                        blob_id=info.blob_id,
                        sha256=info.lfs.sha256 if info.lfs is not None else None,
                    )
        return out

    def url(self, path: str, commit: str) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(self.repo_id, path, repo_type="dataset", revision=commit, endpoint=self.endpoint)

    def headers(self) -> dict[str, str]:
        from huggingface_hub.utils import build_hf_headers

        return build_hf_headers(token=self.config.token, library_name="physical-ai-av-pipeline")


class _hub_errors:
    """Context manager mapping huggingface_hub / network exceptions to one-line `PipelineError`s."""

    def __init__(self, config: DownloadConfig, what: str) -> None:
        self.config = config
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, PipelineError):
            return False
        raise hub_error_to_pipeline_error(exc, self.config, self.what) from None


def _is_auth_error(exc: BaseException) -> bool:
    from huggingface_hub.errors import GatedRepoError

    status = getattr(getattr(exc, "response", None), "status_code", None)
    return isinstance(exc, GatedRepoError) or status in (401, 403)


def gated_message(repo_id: str, status: int | None) -> str:
    code = f"HTTP {status}" if status else "refused"
    return (
        f"access to dataset {repo_id} was refused ({code}, gated dataset): accept the licence on "
        f"https://huggingface.co/datasets/{repo_id}, then run `hf auth login` or set HF_TOKEN"
    )


def hub_error_to_pipeline_error(exc: BaseException, config: DownloadConfig, what: str) -> PipelineError:
    """One line for the user; never includes the token."""
    import httpx2
    from huggingface_hub.errors import (
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if _is_auth_error(exc):
        return PipelineError(gated_message(config.repo_id, status))
    if isinstance(exc, RepositoryNotFoundError):
        return PipelineError(f"--repo-id {config.repo_id}: dataset not found on the Hub (check the name)")
    if isinstance(exc, RevisionNotFoundError):
        return PipelineError(f"--revision {config.revision}: not found in dataset {config.repo_id}")
    if isinstance(exc, OfflineModeIsEnabled):
        return PipelineError(f"{what}: HF_HUB_OFFLINE is set; unset it to download")
    if _is_disk_full(exc):
        return PipelineError(f"{what}: no space left on device under --output-dir {config.output_dir}")
    if isinstance(exc, HfHubHTTPError):
        return PipelineError(f"{what}: the Hub answered HTTP {status}; a re-run resumes")
    if isinstance(exc, (httpx2.HTTPError, OSError)):
        return PipelineError(f"{what}: network failure ({type(exc).__name__}) after retries; a re-run resumes")
    return PipelineError(f"{what}: {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------------------------------------------
# transfers


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


def _status(exc: BaseException) -> int | None:
    return getattr(getattr(exc, "response", None), "status_code", None)


def _is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_error(partial: Path, repo_path: str) -> PipelineError:
    kept = partial.stat().st_size if partial.exists() else 0
    return PipelineError(
        f"{partial.parent}: no space left on device while writing {repo_path} ({kept} bytes kept); "
        "free some space and re-run (it resumes)"
    )


def _open_partial(path: Path):
    """The partial file, opened for appending (one place, so tests can fill the disk)."""
    return path.open("ab")


def _transfer(hub: _Hub, partial: Path, remote: RemoteFile, url: str) -> int:
    """Append the rest of `remote` to `partial` (resuming), retrying transient HTTP statuses; bytes fetched."""
    from huggingface_hub.file_download import http_get

    retry = 0
    while True:
        resume = partial.stat().st_size if partial.exists() else 0
        if resume > remote.size:
            partial.unlink()
            resume = 0
        if resume:
            logger.info("resuming %s at byte %d of %d", remote.path, resume, remote.size)
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
            logger.warning("%s: HTTP %s; retrying in %.0f s", remote.path, _status(exc), pause)
            time.sleep(pause)
            retry += 1


def _fetch_one(hub: _Hub, state: _LocalState, remote: RemoteFile, commit: str) -> FileResult:
    """Download one file into its partial file (resuming), verify it, rename it into place."""
    partial = state.partial(remote)
    final = state.final(remote)
    try:
        partial.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if _is_disk_full(exc):
            raise disk_full_error(partial, remote.path) from None
        raise
    url = hub.url(remote.path, commit)
    fetched = 0
    for attempt in (1, 2):
        try:
            fetched += _transfer(hub, partial, remote, url)
        except Exception as exc:  # noqa: BLE001 - reported per file; auth errors and a full disk stop the run
            if _is_auth_error(exc):
                raise hub_error_to_pipeline_error(exc, hub.config, remote.path) from None
            if _is_disk_full(exc):
                raise disk_full_error(partial, remote.path) from None
            status = _status(exc)
            reason = f"HTTP {status}" if status else f"network failure ({type(exc).__name__}) after retries"
            kept = partial.stat().st_size if partial.exists() else 0
            logger.warning("%s: %s (%d bytes kept for a re-run)", remote.path, reason, kept)
            return FileResult(remote.path, remote.size, remote.etag, "failed", False, reason, fetched)
        if file_matches(partial, remote):
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, final)
            state.mark_verified(remote)
            return FileResult(remote.path, remote.size, remote.etag, "downloaded", True, None, fetched)
        logger.warning(
            "%s: size or hash mismatch after download (attempt %d); fetching it again", remote.path, attempt
        )
        # The whole file is fetched again: count its bytes once on the bar (the resumed part was never on it).
        _ByteProgress.rewind(remote.size)
        partial.unlink(missing_ok=True)
    reason = "size or hash differs from the Hub's after two downloads"
    return FileResult(remote.path, remote.size, remote.etag, "failed", False, reason, fetched)


def _ensure_files(
    hub: _Hub,
    state: _LocalState,
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
        if config.force:
            state.forget(remote)
            todo.append(remote)
            continue
        complete, how = (known or {}).get(remote.path) or state.is_complete(remote, config.verify)
        if complete:
            results[remote.path] = FileResult(remote.path, remote.size, remote.etag, "complete", True, how)
        else:
            todo.append(remote)
    if todo:
        remaining = sum(r.size - _partial_size(state, r) for r in todo)
        progress.start(description, total=remaining, unit=BYTES)
        _ByteProgress.sink = progress
        _ByteProgress.stop.clear()
        pool = ThreadPoolExecutor(max_workers=min(config.max_workers, len(todo)))
        try:
            futures = [pool.submit(_fetch_one, hub, state, r, commit) for r in todo]
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


def _partial_size(state: _LocalState, remote: RemoteFile) -> int:
    partial = state.partial(remote)
    return min(partial.stat().st_size, remote.size) if partial.exists() else 0


def _check_disk(output_dir: Path, needed: int) -> None:
    probe = output_dir
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed + DISK_MARGIN_BYTES > free:
        raise PipelineError(
            f"--output-dir {output_dir}: not enough disk space (need {needed / GB:.2f} GB "
            f"+ {DISK_MARGIN_BYTES / GB:.2f} GB margin, {free / GB:.2f} GB free)"
        )


# ---------------------------------------------------------------------------------------------------------------
# the stage


def run(
    config: DownloadConfig,
    progress: ProgressSink | None = None,
    confirm: Callable[[str], bool] | None = None,
) -> DownloadResult:
    """Download the selected chunks and features; write `output_dir/download_manifest.json`.

    `confirm(question)` is asked when more than `confirm_threshold_gb` would be downloaded and `yes` is not set;
    without it (unattended) the run is refused. Raises `PipelineError` for bad chunk ids / feature names, a gated
    repo, not enough disk, or files that could not be downloaded after retries (what finished is kept).
    """
    progress = progress or NullProgress()
    hub = _Hub(config)
    state = _LocalState(config.output_dir)
    logger.info("dataset %s @ %s via %s", config.repo_id, config.revision, hub.endpoint)
    commit = hub.resolve_commit()

    # 1. the index files, from which every other path is derived
    index_paths = [catalog.FEATURES_CSV, catalog.CLIP_INDEX_PARQUET, catalog.SPLITS_PARQUET]
    index_remote = hub.paths_info(index_paths, commit)
    for required in (catalog.FEATURES_CSV, catalog.CLIP_INDEX_PARQUET):
        if required not in index_remote:
            raise PipelineError(f"--repo-id {config.repo_id}: {required} not found at revision {config.revision}")
    index_files = [index_remote[p] for p in index_paths if p in index_remote]
    index_results = _ensure_files(hub, state, index_files, commit, config, progress, "index files")
    failed = [r for r in index_results if r.status == "failed"]
    if failed:
        raise PipelineError(f"{failed[0].path}: {failed[0].reason}")
    features = catalog.read_features(config.output_dir / catalog.FEATURES_CSV)
    clip_index = catalog.read_clip_index(
        config.output_dir / catalog.CLIP_INDEX_PARQUET, config.output_dir / catalog.SPLITS_PARQUET
    )
    feature_names = catalog.validate_feature_names(config.features, features)

    # 2. chunks
    skipped: list[dict[str, Any]] = []
    if config.all_chunks:
        chunk_ids = clip_index.chunks
    else:
        chunk_ids = catalog.select_chunks(config.chunk_ranges, clip_index.chunks)
    split_clips: dict[int, list[str]] = {}
    if config.split is not None:
        in_split = set(clip_index.chunks_of_split(config.split))
        for chunk in chunk_ids:
            if chunk not in in_split:
                skipped.append({"chunk": chunk, "reason": f"no clip of split {config.split!r}"})
        chunk_ids = [c for c in chunk_ids if c in in_split]
        if not chunk_ids:
            raise PipelineError(f"--split {config.split}: none of the selected chunks holds a {config.split} clip")
        split_clips = {c: clip_index.clips(chunk=c, split=config.split) for c in chunk_ids}

    # 3. sizes and hashes of the chunk files
    wanted = [catalog.chunk_file(features[name], chunk) for chunk in chunk_ids for name in feature_names]
    remote = hub.paths_info(wanted, commit)
    for path in wanted:
        if path not in remote:
            skipped.append({"path": path, "reason": f"not in the repository at {commit[:12]}"})
            logger.warning("%s: not in the repository at this revision; skipped", path)
    remotes = [remote[p] for p in wanted if p in remote]
    total = sum(r.size for r in remotes)

    # 4. what is left to fetch, size confirmation, disk space
    known = {} if config.force else {r.path: state.is_complete(r, config.verify) for r in remotes}
    pending = [r for r in remotes if config.force or not known[r.path][0]]
    to_download = sum(r.size for r in pending)
    to_transfer = to_download - (0 if config.force else sum(_partial_size(state, r) for r in pending))
    logger.info(
        "%d chunk(s) x %d feature(s): %d files, %.3f GB in all; %.3f GB to download (%d files)",
        len(chunk_ids),
        len(feature_names),
        len(remotes),
        total / GB,
        to_download / GB,
        len(pending),
    )
    if to_transfer > config.confirm_threshold_gb * GB and not config.yes:
        question = f"Download {to_transfer / GB:.1f} GB into {config.output_dir}?"
        if confirm is None:
            raise PipelineError(
                f"--yes: the download is {to_transfer / GB:.1f} GB, above the {config.confirm_threshold_gb:g} GB "
                "threshold; re-run with --yes to confirm"
            )
        if not confirm(question):
            raise PipelineError("download cancelled (re-run with --yes to skip the question)")
    _check_disk(config.output_dir, to_transfer)

    # 5. transfer, verify, record
    description = f"downloading {len(pending)} files"
    results = _ensure_files(hub, state, remotes, commit, config, progress, description, known)
    manifest_path = config.output_dir / MANIFEST_NAME
    result = DownloadResult(
        commit=commit,
        chunks=chunk_ids,
        features=feature_names,
        files=index_results + results,
        skipped=skipped,
        split_clips=split_clips,
        total_bytes=total,
        to_download_bytes=to_download,
        manifest_path=manifest_path,
    )
    atomic.write_json(manifest_path, _manifest(config, hub, result))
    fetched = sum(r.bytes_fetched for r in result.files)
    logger.info(
        "%d downloaded, %d already complete, %d failed; %.3f GB fetched; manifest %s",
        len(result.downloaded),
        sum(r.status == "complete" for r in result.files),
        len(result.failed),
        fetched / GB,
        manifest_path,
    )
    if result.failed:
        first = result.failed[0]
        raise PipelineError(
            f"{len(result.failed)} of {len(result.files)} files not downloaded (first: {first.path}: {first.reason}); "
            "a re-run resumes"
        )
    return result


def _manifest(config: DownloadConfig, hub: _Hub, result: DownloadResult) -> dict[str, Any]:
    return {
        "config": config.to_json(),
        "repo_id": config.repo_id,
        "revision": config.revision,
        "commit": result.commit,
        "endpoint": hub.endpoint,
        "chunks": result.chunks,
        "features": result.features,
        "split": config.split,
        "split_clips": {str(k): v for k, v in result.split_clips.items()},
        "total_bytes": result.total_bytes,
        "to_download_bytes": result.to_download_bytes,
        "files": [asdict(f) for f in result.files],
        "skipped": result.skipped,
    }


__all__ = [
    "DEFAULT_REPO_ID",
    "MANIFEST_NAME",
    "DownloadConfig",
    "DownloadResult",
    "FileResult",
    "file_matches",
    "partial_path",
    "run",
]
