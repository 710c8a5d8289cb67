"""The served repository as the Hub describes it: every file's size, git blob id and (for LFS files) sha256, and
a commit id derived from the listing, so a changed file gives a new commit.

A file is LFS (ETag = sha256 of the content, as the real Hub does for LFS files) if its suffix is in `LFS_SUFFIXES`
or it is at least `LFS_MIN_SIZE` bytes; `features.csv`, `README.md` and the like stay plain git files (ETag = git
blob sha1), as on the real repository.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import PipelineError

LFS_SUFFIXES = (".zip", ".parquet", ".mp4", ".pdf", ".bin", ".npz", ".npy", ".tar", ".gz", ".safetensors")
# the Hub refuses plain git files of 10 MB and more: anything that large is LFS
LFS_MIN_SIZE = 10 * 1024 * 1024
READ_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class RepoEntry:
    """One file of the served repository."""

    # repo path with forward slashes, e.g. "labels/egomotion/egomotion.chunk_0000.zip"
    path: str
    # bytes
    size: int
    # git blob sha1 (of the content, or of the LFS pointer for LFS files), hex
    blob_oid: str
    # sha256 of the content, hex, for LFS files; None for plain git files
    lfs_sha256: str | None
    # length of the LFS pointer file, bytes (0 for plain git files)
    pointer_size: int = 0

    @property
    def etag(self) -> str:
        """What the Hub sends as the ETag: sha256 for LFS files, the git blob sha1 otherwise."""
        return self.lfs_sha256 or self.blob_oid

    def tree_json(self, expand: bool = False, commit: str = "", date: str = "") -> dict:
        """The entry as the tree and paths-info APIs return it."""
        out: dict = {"type": "file", "oid": self.blob_oid, "size": self.size, "path": self.path}
        if self.lfs_sha256 is not None:
            out["lfs"] = {"oid": self.lfs_sha256, "size": self.size, "pointerSize": self.pointer_size}
        if expand:
            out["lastCommit"] = {"id": commit, "title": "Synthetic snapshot", "date": date}
        return out


def git_blob_sha1(data: bytes) -> str:
    """Git's object id of a blob: sha1 of `b"blob <len>\\0" + data`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file text that git stores in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def is_lfs(path: str, size: int) -> bool:
    return path.lower().endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE


def hash_entry(root: Path, rel: str) -> RepoEntry:
    """Hash one file of `root` into a `RepoEntry`."""
    full = root / rel
    size = full.stat().st_size
    if is_lfs(rel, size):
        digest = hashlib.sha256()
        with full.open("rb") as f:
            while block := f.read(READ_BLOCK):
                digest.update(block)
        sha = digest.hexdigest()
        pointer = lfs_pointer(sha, size)
        return RepoEntry(rel, size, git_blob_sha1(pointer), sha, len(pointer))
    return RepoEntry(rel, size, git_blob_sha1(full.read_bytes()), None)


@dataclass
class RepoSnapshot:
    """All files under `root` (hidden names skipped) with their hashes, and a commit id derived from them."""

    # directory served
    root: Path
    # repo path -> entry
    files: dict[str, RepoEntry] = field(default_factory=dict)
    # 40-hex commit id: sha1 over the sorted (path, oid) list, so equal trees give equal commits
    commit: str = ""
    # directory repo paths (without the root "")
    directories: set[str] = field(default_factory=set)

    @classmethod
    def scan(cls, root: Path) -> RepoSnapshot:
        root = Path(root).resolve()
        if not root.is_dir():
            raise PipelineError(f"{root}: not a directory to serve")
        files: dict[str, RepoEntry] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                rel = (Path(dirpath) / name).relative_to(root).as_posix()
                files[rel] = hash_entry(root, rel)
        listing = "".join(f"{p}\0{e.blob_oid}\n" for p, e in sorted(files.items()))
        commit = hashlib.sha1(listing.encode()).hexdigest()
        directories = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
        return cls(root=root, files=files, commit=commit, directories=directories)

    def tree_id(self, directory: str) -> str:
        prefix = directory + "/"
        listing = "".join(f"{p}\0{e.blob_oid}\n" for p, e in sorted(self.files.items()) if p.startswith(prefix))
        return hashlib.sha1(listing.encode()).hexdigest()

    def directory_json(self, directory: str) -> dict:
        return {"type": "directory", "oid": self.tree_id(directory), "size": 0, "path": directory}

    def list_tree(self, path: str, recursive: bool) -> list[str] | None:
        """Repo paths (files and directories) under `path`, sorted; None if `path` is not a directory."""
        path = path.strip("/")
        if path and path not in self.directories:
            return None
        prefix = f"{path}/" if path else ""
        names = [p for p in (*self.directories, *self.files) if p.startswith(prefix)]
        if not recursive:
            names = [p for p in names if "/" not in p[len(prefix) :]]
        return sorted(names)


__all__ = ["LFS_MIN_SIZE", "LFS_SUFFIXES", "READ_BLOCK", "RepoEntry", "RepoSnapshot", "git_blob_sha1", "is_lfs"]
