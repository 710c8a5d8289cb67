"""Whether segment videos exist, at one directory listing per directory instead of one `stat` per file.

The segment stage writes a clip's mp4s into one directory, so checking millions of segments costs one listing per
clip, which matters on a network file system. Listings of recently seen directories are kept (bounded), so
memory stays flat whatever the number of files.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import numpy as np


class VideoFiles:
    """Existence of video files answered from cached directory listings (the last `cached_dirs` directories)."""

    def __init__(self, cached_dirs: int = 1024) -> None:
        self._listings: OrderedDict[str, list[str]] = OrderedDict()
        self._cached_dirs = cached_dirs

    def exist(self, root: str, videos: Any) -> np.ndarray:
        """(len(videos),) bool: `root/video` is a file (or a link to one), for an Arrow string array of paths."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(videos, pa.ChunkedArray):
            videos = videos.combine_chunks()
        dirs = pc.struct_field(pc.extract_regex(videos, r"^(?P<dir>.*?)(?P<name>[^/]*)$"), "dir")
        present = [d + name for d in pc.unique(dirs).to_pylist() for name in self._names(os.path.join(root, d))]
        return pc.is_in(videos, value_set=pa.array(present, type=pa.string())).to_numpy(zero_copy_only=False)

    def _names(self, directory: str) -> list[str]:
        names = self._listings.get(directory)
        if names is None:
            names = self._listings[directory] = _list(directory)
            if len(self._listings) > self._cached_dirs:
                self._listings.popitem(last=False)
        else:
            self._listings.move_to_end(directory)
        return names


def _list(directory: str) -> list[str]:
    try:
        with os.scandir(directory or ".") as entries:
            return [e.name for e in entries if e.is_file()]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


__all__ = ["VideoFiles"]
