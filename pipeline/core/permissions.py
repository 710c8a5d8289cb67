"""Output folders: refuse one this process cannot write before any work, and give the files a run wrote the modes
the umask allows (safetensors creates its files 0600, so another user or a serving container could not read them).
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.core.atomic import temp_sibling
from pipeline.core.errors import PipelineError


def check_writable(path: Path, flag: str = "--output-dir") -> None:
    """Refuse `path` if this process cannot create files in it (or, while it does not exist, in its nearest existing
    parent), by writing and removing a probe file; nothing is left behind, `path` is not created.

    Raises:
        PipelineError: `FLAG PATH: cannot write there (REASON)`.
    """
    target = Path(path)
    while not target.exists() and target != target.parent:
        target = target.parent
    probe = temp_sibling(target / "write_probe")
    try:
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise PipelineError(f"{flag} {path}: cannot write there ({err.strerror or err})") from None


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(root: Path, since: float | None = None) -> None:
    """Widen the modes of the files and folders under `root` (not `root` itself: made by mkdir, or the user's) to what
    the umask allows for a new file (0o666) or folder (0o777), never narrowing them; with `since` (a `time.time()`),
    only those modified since."""
    mask = current_umask()
    for path in Path(root).rglob("*"):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            continue
        status = path.stat()
        if since is not None and status.st_mtime < since:
            continue
        wanted = status.st_mode | ((0o777 if path.is_dir() else 0o666) & ~mask)
        if wanted != status.st_mode:
            path.chmod(wanted & 0o7777)


__all__ = ["check_writable", "current_umask", "follow_umask"]
