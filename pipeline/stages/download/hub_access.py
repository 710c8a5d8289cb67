"""The huggingface_hub calls the download stage makes (revision, paths-info, file URLs, headers), with every
Hub or network error turned into a one-line `PipelineError` that never includes the token.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

from pipeline.core.environment_errors import EnvironmentFault, environment_fault, is_environment_fault
from pipeline.core.errors import PipelineError
from pipeline.stages.download.config import DownloadConfig
from pipeline.stages.download.files import RemoteFile

# paths-info requests are batched (the Hub answers at most about 1000 paths per call)
PATHS_INFO_BATCH = 500


class Hub:
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


def is_auth_error(exc: BaseException) -> bool:
    from huggingface_hub.errors import GatedRepoError

    status = getattr(getattr(exc, "response", None), "status_code", None)
    return isinstance(exc, GatedRepoError) or status in (401, 403)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


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
    if is_auth_error(exc):
        return PipelineError(gated_message(config.repo_id, status))
    if isinstance(exc, RepositoryNotFoundError):
        return PipelineError(f"--repo-id {config.repo_id}: dataset not found on the Hub (check the name)")
    if isinstance(exc, RevisionNotFoundError):
        return PipelineError(f"--revision {config.revision}: not found in dataset {config.repo_id}")
    if isinstance(exc, OfflineModeIsEnabled):
        return PipelineError(f"{what}: HF_HUB_OFFLINE is set; unset it to download")
    if is_disk_full(exc):
        return EnvironmentFault(f"{what}: no space left on device under --output-dir {config.output_dir}")
    if is_environment_fault(exc):
        return environment_fault(exc)
    if isinstance(exc, HfHubHTTPError):
        return PipelineError(f"{what}: the Hub answered HTTP {status}; a re-run resumes")
    if isinstance(exc, (httpx2.HTTPError, OSError)):
        return PipelineError(f"{what}: network failure ({type(exc).__name__}) after retries; a re-run resumes")
    return PipelineError(f"{what}: {type(exc).__name__}: {exc}")


__all__ = ["Hub", "gated_message", "hub_error_to_pipeline_error", "is_auth_error", "is_disk_full"]
