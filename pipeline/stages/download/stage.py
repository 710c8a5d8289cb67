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

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.av import catalog
from pipeline.av.drives import DATA_COLLECTION_PARQUET
from pipeline.core import atomic
from pipeline.core.errors import PipelineError
from pipeline.core.progress import NullProgress, ProgressSink
from pipeline.stages.download.config import DownloadConfig
from pipeline.stages.download.files import FileResult, LocalState, RemoteFile
from pipeline.stages.download.hub_access import Hub
from pipeline.stages.download.transfer import GB, check_disk, ensure_files, partial_size

log = logging.getLogger(__name__)

MANIFEST_NAME = "download_manifest.json"


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
    manifest_path: Path

    @property
    def downloaded(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "downloaded"]

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]


@dataclass
class _Index:
    """The repository's index files, from which every chunk file path is derived."""

    # what happened to features.csv, clip_index.parquet and the split file
    files: list[FileResult]
    # feature name -> its chunk files' path pattern
    features: dict[str, catalog.Feature]
    clip_index: catalog.ClipIndex
    # the --features asked for, checked against features.csv (de-duplicated, in order)
    feature_names: list[str]


@dataclass
class _Plan:
    """The chunk files of a run and what is left to fetch of them."""

    # every selected file the repository has
    remotes: list[RemoteFile]
    # path -> `LocalState.is_complete` result, so that no file is hashed twice ({} with --redownload)
    known: dict[str, tuple[bool, str]]
    # files not complete yet (all with --redownload)
    pending: list[RemoteFile]
    # bytes of `remotes`, of `pending`, and of `pending` less the partial files already there
    total: int
    to_download: int
    to_transfer: int


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
    hub = Hub(config)
    state = LocalState(config.output_dir)
    log.info("dataset %s @ %s via %s", config.repo_id, config.revision, hub.endpoint)
    commit = hub.resolve_commit()
    index = _read_index(hub, state, commit, config, progress)
    chunk_ids, skipped, split_clips = chunk_selection(config, index.clip_index)
    remotes, missing = _chunk_files(hub, commit, index, chunk_ids)
    plan = _plan(state, remotes, config)
    log.info(
        "%d chunk(s) x %d feature(s): %d files, %.3f GB in all; %.3f GB to download (%d files)",
        len(chunk_ids),
        len(index.feature_names),
        len(remotes),
        plan.total / GB,
        plan.to_download / GB,
        len(plan.pending),
    )
    _confirm_size(config, plan.to_transfer, confirm)
    check_disk(config.output_dir, plan.to_transfer)
    description = f"downloading {len(plan.pending)} files"
    results = ensure_files(hub, state, remotes, commit, config, progress, description, plan.known)
    result = DownloadResult(
        commit=commit,
        chunks=chunk_ids,
        features=index.feature_names,
        files=index.files + results,
        skipped=skipped + missing,
        split_clips=split_clips,
        total_bytes=plan.total,
        to_download_bytes=plan.to_download,
        manifest_path=config.output_dir / MANIFEST_NAME,
    )
    _record(config, hub, result)
    return result


def _read_index(hub: Hub, state: LocalState, commit: str, config: DownloadConfig, progress: ProgressSink) -> _Index:
    """Fetch the index files and read them; the feature names asked for, checked.

    Raises:
        PipelineError: an index file missing or not fetched, unreadable, or an unknown feature name.
    """
    files = _fetch_index(hub, state, commit, config, progress)
    features = catalog.read_features(config.output_dir / catalog.FEATURES_CSV)
    clip_index = catalog.read_clip_index(
        config.output_dir / catalog.CLIP_INDEX_PARQUET, config.output_dir / catalog.SPLITS_PARQUET
    )
    return _Index(files, features, clip_index, catalog.validate_feature_names(config.features, features))


def _chunk_files(
    hub: Hub, commit: str, index: _Index, chunk_ids: list[int]
) -> tuple[list[RemoteFile], list[dict[str, Any]]]:
    """Sizes and hashes of the chunk files (chunk-major, features in order), and the files the repository lacks at
    `commit` as skipped entries (`{"path", "reason"}`)."""
    wanted = [catalog.chunk_file(index.features[name], chunk) for chunk in chunk_ids for name in index.feature_names]
    remote = hub.paths_info(wanted, commit)
    missing: list[dict[str, Any]] = []
    for path in wanted:
        if path not in remote:
            missing.append({"path": path, "reason": f"not in the repository at {commit[:12]}"})
            log.warning("%s: not in the repository at this revision; skipped", path)
    return [remote[p] for p in wanted if p in remote], missing


def _plan(state: LocalState, remotes: list[RemoteFile], config: DownloadConfig) -> _Plan:
    """What is left to fetch of `remotes`: complete files are checked once here (size, and hash with --verify)."""
    known = {} if config.redownload else {r.path: state.is_complete(r, config.verify) for r in remotes}
    pending = [r for r in remotes if config.redownload or not known[r.path][0]]
    to_download = sum(r.size for r in pending)
    to_transfer = to_download - (0 if config.redownload else sum(partial_size(state, r) for r in pending))
    return _Plan(remotes, known, pending, sum(r.size for r in remotes), to_download, to_transfer)


def _confirm_size(config: DownloadConfig, to_transfer: int, confirm: Callable[[str], bool] | None) -> None:
    """Ask before transferring more than `confirm_threshold_gb` (unless --yes); refuse unattended.

    Raises:
        PipelineError: the download is too large to start without --yes and no one can be asked, or was cancelled.
    """
    if to_transfer <= config.confirm_threshold_gb * GB or config.yes:
        return
    question = f"Download {to_transfer / GB:.1f} GB into {config.output_dir}?"
    if confirm is None:
        raise PipelineError(
            f"--yes: the download is {to_transfer / GB:.1f} GB, above the {config.confirm_threshold_gb:g} GB "
            "threshold; re-run with --yes to confirm"
        )
    if not confirm(question):
        raise PipelineError("download cancelled (re-run with --yes to skip the question)")


def _record(config: DownloadConfig, hub: Hub, result: DownloadResult) -> None:
    """Write the manifest and log the outcome.

    Raises:
        PipelineError: some files were not downloaded (the manifest is written first; a re-run resumes).
    """
    atomic.write_json(result.manifest_path, _manifest(config, hub, result))
    fetched = sum(r.bytes_fetched for r in result.files)
    log.info(
        "%d downloaded, %d already complete, %d failed; %.3f GB fetched; manifest %s",
        len(result.downloaded),
        sum(r.status == "complete" for r in result.files),
        len(result.failed),
        fetched / GB,
        result.manifest_path,
    )
    if result.failed:
        first = result.failed[0]
        raise PipelineError(
            f"{len(result.failed)} of {len(result.files)} files not downloaded (first: {first.path}: {first.reason}); "
            "a re-run resumes"
        )


def _fetch_index(
    hub: Hub, state: LocalState, commit: str, config: DownloadConfig, progress: ProgressSink
) -> list[FileResult]:
    """Fetch (or find complete) features.csv, clip_index.parquet, the split file and the data collection table (the
    drive keys; both optional); PipelineError if one fails."""
    index_paths = [catalog.FEATURES_CSV, catalog.CLIP_INDEX_PARQUET, catalog.SPLITS_PARQUET, DATA_COLLECTION_PARQUET]
    index_remote = hub.paths_info(index_paths, commit)
    for required in (catalog.FEATURES_CSV, catalog.CLIP_INDEX_PARQUET):
        if required not in index_remote:
            raise PipelineError(f"--repo-id {config.repo_id}: {required} not found at revision {config.revision}")
    index_files = [index_remote[p] for p in index_paths if p in index_remote]
    index_results = ensure_files(hub, state, index_files, commit, config, progress, "index files")
    failed = [r for r in index_results if r.status == "failed"]
    if failed:
        raise PipelineError(f"{failed[0].path}: {failed[0].reason}")
    return index_results


def fetch_index(config: DownloadConfig, progress: ProgressSink | None = None) -> str:
    """Resolve `config.revision` and fetch only the index files into `output_dir`; return the commit id.

    Complete index files are not fetched again (no data request). Raises `PipelineError` like `run`.
    """
    hub = Hub(config)
    commit = hub.resolve_commit()
    _fetch_index(hub, LocalState(config.output_dir), commit, config, progress or NullProgress())
    return commit


def chunk_selection(
    config: DownloadConfig, clip_index: catalog.ClipIndex
) -> tuple[list[int], list[dict[str, Any]], dict[int, list[str]]]:
    """(chunk ids, chunks left out with a reason, split clips per chunk) of `config` (--chunk / --all / --split)."""
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
    return chunk_ids, skipped, split_clips


def _manifest(config: DownloadConfig, hub: Hub, result: DownloadResult) -> dict[str, Any]:
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


__all__ = ["MANIFEST_NAME", "DownloadResult", "chunk_selection", "fetch_index", "run"]
