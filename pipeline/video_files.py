"""Whether segment videos exist, at one directory listing per directory instead of one `stat` per file.

The segment stage writes a clip's mp4s into one directory, so checking millions of segments costs one listing per
clip, which matters on a network file system. Listings of recently seen directories are kept (bounded), so
memory stays flat whatever the number of files.
"""

from __future__ import annotations

import os
from collections import OrderedDict


class VideoFiles:
    """`exists(path)` answered from cached directory listings (the last `cached_dirs` directories)."""

    def __init__(self, cached_dirs: int = 256) -> None:
        self._listings: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._cached_dirs = cached_dirs

    def exists(self, path: str) -> bool:
        """True if `path` is a file (or a link to one); its directory is listed once while it stays cached."""
        directory, name = os.path.split(path)
        listing = self._listings.get(directory)
        if listing is None:
            listing = self._list(directory)
            self._listings[directory] = listing
            if len(self._listings) > self._cached_dirs:
                self._listings.popitem(last=False)
        else:
            self._listings.move_to_end(directory)
        return name in listing

    @staticmethod
    def _list(directory: str) -> frozenset[str]:
        try:
            with os.scandir(directory or ".") as entries:
                return frozenset(e.name for e in entries if e.is_file())
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return frozenset()


__all__ = ["VideoFiles"]
