"""A cheap content fingerprint of zip members, from the zip's central directory only (no member data is read).

Each member's CRC-32 and size, as the central directory records them, identify its content; a zip that cannot be
read at all is identified by its file size and mtime instead, and a missing zip by that fact. The segment stage
stores the fingerprint of what a clip read with the clip's record, and re-cuts the clip when it changes.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path


def zip_fingerprint(zip_path: Path, members: Iterable[str]) -> dict:
    """{"zip": name, "members": {member: [crc32, size] | None}} (None: not in the zip), or, for a zip that cannot be
    opened, {"zip": name, "unreadable": [size_bytes, mtime_ns]} / {"zip": name, "missing": True}."""
    zip_path = Path(zip_path)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            infos = {info.filename: info for info in zf.infolist()}
    except FileNotFoundError:
        return {"zip": zip_path.name, "missing": True}
    except (OSError, zipfile.BadZipFile, ValueError):
        try:
            stat = zip_path.stat()
        except OSError:
            return {"zip": zip_path.name, "missing": True}
        return {"zip": zip_path.name, "unreadable": [stat.st_size, stat.st_mtime_ns]}
    out: dict[str, list[int] | None] = {}
    for name in members:
        info = infos.get(name)
        out[name] = None if info is None else [info.CRC, info.file_size]
    return {"zip": zip_path.name, "members": out}


__all__ = ["zip_fingerprint"]
