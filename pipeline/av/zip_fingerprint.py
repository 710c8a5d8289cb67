"""A cheap content fingerprint of zip members, from the zip's central directory only (no member data is read).

Each member's CRC-32 and size, as the central directory records them, identify its content; a zip that cannot be
read at all is identified by its file size and mtime instead, and a missing zip by that fact. The segment stage
stores the fingerprint of what a clip read with the clip's record, and re-cuts the clip when it changes.
"""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Iterable
from pathlib import Path


def zip_fingerprint(zip_path: Path, members: Iterable[str]) -> dict:
    """{"zip": name, "members": {member: [crc32, size] | None}} (None: not in the zip), or, for a zip that cannot be
    opened, {"zip": name, "unreadable": [size_bytes, mtime_ns]} / {"zip": name, "missing": True}."""
    zip_path = Path(zip_path)
    try:
        stat = zip_path.stat()
    except OSError:
        return {"zip": zip_path.name, "missing": True}
    listing = _central_directory(str(zip_path), stat.st_size, stat.st_mtime_ns)
    if listing is None:
        return {"zip": zip_path.name, "unreadable": [stat.st_size, stat.st_mtime_ns]}
    out: dict[str, list[int] | None] = {}
    for name in members:
        entry = listing.get(name)
        out[name] = None if entry is None else list(entry)
    return {"zip": zip_path.name, "members": out}


@functools.lru_cache(maxsize=8)
def _central_directory(path: str, size: int, mtime_ns: int) -> dict[str, tuple[int, int]] | None:
    """member -> (crc32, size) of a zip, or None if it cannot be read. Keyed by size and mtime too, so a replaced
    zip is read again; a worker reads each chunk zip's directory once for all of its clips."""
    try:
        with zipfile.ZipFile(path) as zf:
            return {info.filename: (info.CRC, info.file_size) for info in zf.infolist()}
    except (OSError, zipfile.BadZipFile, ValueError):
        return None


__all__ = ["zip_fingerprint"]
