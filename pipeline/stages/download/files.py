"""The files of a download on both sides: what the Hub says a file is (`RemoteFile`), what happened to it
(`FileResult`), and the local checks, with no network: size and hash (sha256 for LFS files, git blob sha1 for
plain ones), partial files kept between runs, and markers that spare a re-run from hashing again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.core import atomic

CACHE_DIR = Path(".cache") / "pipeline" / "download"
_HASH_BLOCK = 4 * 1024 * 1024


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


def delete_files(output_dir: Path, repo_paths: Sequence[str]) -> int:
    """Delete downloaded files with their verification markers and partial downloads; return the bytes freed."""
    state = LocalState(Path(output_dir))
    freed = 0
    for repo_path in repo_paths:
        candidates = [state.output_dir / repo_path, state.cache / f"{repo_path}.verified.json"]
        candidates += list((state.cache / repo_path).parent.glob(f"{Path(repo_path).name}.*.incomplete"))
        for path in candidates:
            if path.is_file():
                freed += path.stat().st_size
                path.unlink(missing_ok=True)
    return freed


class LocalState:
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


__all__ = [
    "CACHE_DIR",
    "FileResult",
    "LocalState",
    "RemoteFile",
    "delete_files",
    "file_matches",
    "git_blob_sha1_of_file",
    "partial_path",
    "sha256_of_file",
]
