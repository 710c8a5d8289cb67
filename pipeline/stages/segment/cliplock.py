"""Per-clip lock files, so that several runs (or machines) can share one segment output directory.

A lock is a small JSON file (`{"pid", "host", "time", "run"}`) created with `O_CREAT | O_EXCL`, which is atomic on
local filesystems and on NFS v3+. A run that finds a clip locked leaves it (and its files) alone for this run. A
lock whose process is gone is taken over, but only on the host that wrote it: a lock from another host is never
broken automatically (its owner may still be running), and its message says which file to remove.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

# One id per process tree start: tells this run's locks from another run's with a reused pid.
RUN_ID = uuid.uuid4().hex


@dataclass(frozen=True)
class LockHeld:
    """Another run holds the lock: `reason` is the one-line message for the manifest."""

    path: Path
    reason: str
    # The holder runs on this host (and is alive): it will release the lock. Otherwise it may be gone for good.
    local: bool


def _owner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(), "run": RUN_ID}


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written right now, or garbage: treat as held by an unknown owner
    return data if isinstance(data, dict) else {}


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return True  # unknown owner: never assume it is gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(owner: dict) -> bool:
    return bool(owner) and owner.get("host") == socket.gethostname() and not _alive(owner.get("pid"))


def _create(path: Path) -> bool:
    """Create the lock file exclusively; False if it exists. Other OS errors (read-only, disk full) propagate."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(_owner(), f)
    return True


def _take_over(path: Path, stale: dict) -> None:
    """Remove a stale lock, unless another run replaced it meanwhile (then put that one back)."""
    trash = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.stale")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    if _read(trash) != stale:
        with contextlib.suppress(FileExistsError):
            os.link(trash, path)  # no-clobber restore of the fresh lock we moved by mistake
    trash.unlink(missing_ok=True)


def acquire(path: Path) -> LockHeld | None:
    """Take the lock at `path` (creating its directory); None when taken, else who holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        if _create(path):
            return None
        owner = _read(path)
        if owner is None:
            continue  # released between our two calls
        if not _is_stale(owner):
            return _held(path, owner)
        _take_over(path, owner)
    return _held(path, _read(path) or {})


def _held(path: Path, owner: dict) -> LockHeld:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(owner["time"])) if "time" in owner else "?"
    where = f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')} since {since} UTC"
    local = owner.get("host") in (None, socket.gethostname())
    if not local:
        return LockHeld(path, f"locked by another run ({where}); if that run is gone, remove {path}", local)
    return LockHeld(path, f"locked by another run ({where})", local)


def release(path: Path) -> None:
    """Remove the lock at `path` if this process holds it."""
    owner = _read(path)
    if owner and owner.get("pid") == os.getpid() and owner.get("run") == RUN_ID:
        path.unlink(missing_ok=True)


__all__ = ["LockHeld", "acquire", "release"]
