"""Whether segment videos exist, and whether they stay inside their root through symlinks, at one directory listing
per directory instead of one `stat` per file.

The segment stage writes a clip's mp4s into one directory, so checking millions of segments costs one listing per
clip, which matters on a network file system. Listings of recently seen directories are kept (bounded), so
memory stays flat whatever the number of files.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class _Listing:
    """One directory as listed."""

    # The directory with every symlink resolved.
    real: str
    # Names of the files in it (links to files included).
    files: list[str]
    # Names of the symlinks in it -> their resolved targets.
    links: dict[str, str]


class VideoFiles:
    """Existence of video files answered from cached directory listings (the last `cached_dirs` directories)."""

    def __init__(self, cached_dirs: int = 1024) -> None:
        self._listings: OrderedDict[str, _Listing] = OrderedDict()
        self._cached_dirs = cached_dirs

    def exist(self, root: str, videos: Any) -> np.ndarray:
        """(len(videos),) bool: `root/video` is a file (or a link to one), for an Arrow string array of paths."""
        import pyarrow as pa
        import pyarrow.compute as pc

        videos, dirs = _split(videos)
        present = [d + name for d in pc.unique(dirs).to_pylist() for name in self._list(os.path.join(root, d)).files]
        return pc.is_in(videos, value_set=pa.array(present, type=pa.string())).to_numpy(zero_copy_only=False)

    def outside(self, root: str, videos: Any) -> np.ndarray:
        """(len(videos),) bool: `root/video` resolves outside `root` through a symlink (of the file or of a folder on
        its way), for an Arrow string array of relative paths without '..' (`record_checks.video_path_problem`)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        videos, dirs = _split(videos)
        real_root = os.path.realpath(root)
        escaping: list[str] = []
        for d in pc.unique(dirs).to_pylist():
            listing = self._list(os.path.join(root, d))
            if not _inside(real_root, listing.real):
                escaping.append(d)
            escaping += [d + name for name, target in listing.links.items() if not _inside(real_root, target)]
        if not escaping:
            return np.zeros(len(videos), dtype=bool)
        value_set = pa.array(escaping, type=pa.string())
        return pc.or_(pc.is_in(videos, value_set=value_set), pc.is_in(dirs, value_set=value_set)).to_numpy(
            zero_copy_only=False
        )

    def _list(self, directory: str) -> _Listing:
        listing = self._listings.get(directory)
        if listing is None:
            listing = self._listings[directory] = _list(directory)
            if len(self._listings) > self._cached_dirs:
                self._listings.popitem(last=False)
        else:
            self._listings.move_to_end(directory)
        return listing


def _split(videos: Any) -> tuple[Any, Any]:
    """The paths as one Arrow array, and the directory part of each ('' or ending in '/')."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(videos, pa.ChunkedArray):
        videos = videos.combine_chunks()
    return videos, pc.struct_field(pc.extract_regex(videos, r"^(?P<dir>.*?)(?P<name>[^/]*)$"), "dir")


def _inside(real_root: str, real_path: str) -> bool:
    return real_path == real_root or real_path.startswith(real_root.rstrip(os.sep) + os.sep)


def _list(directory: str) -> _Listing:
    real = os.path.realpath(directory or ".")
    try:
        with os.scandir(directory or ".") as entries:
            entries = list(entries)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return _Listing(real, [], {})
    files = [e.name for e in entries if e.is_file()]
    links = {e.name: os.path.realpath(e.path) for e in entries if e.is_symlink()}
    return _Listing(real, files, links)


__all__ = ["VideoFiles"]
