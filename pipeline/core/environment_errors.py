"""Faults of the environment, not of the input: a full or read-only disk, a permission, memory. They stop a run with
one line naming the path (exit 2) and are never recorded against a clip or a sample."""

from __future__ import annotations

import errno
import os

from pipeline.core.errors import PipelineError

# errno values that say the machine, not the file read, is at fault.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOMEM})


class EnvironmentFault(PipelineError):
    """The environment failed (disk full, read-only, no permission, no memory): stop the run; a re-run resumes."""


def is_environment_fault(err: BaseException) -> bool:
    """Whether `err` is an environment fault: an `EnvironmentFault`, a `MemoryError`, or an OSError (PyAV's
    included) with one of `ENVIRONMENT_ERRNOS`."""
    if isinstance(err, (EnvironmentFault, MemoryError)):
        return True
    return getattr(err, "errno", None) in ENVIRONMENT_ERRNOS


def environment_fault(err: BaseException, path: object = None) -> EnvironmentFault:
    """One line naming the path and the fault, e.g. "out/x.mp4: No space left on device (errno ENOSPC); free
    space or fix the permissions, then re-run"."""
    if isinstance(err, EnvironmentFault):
        return err
    if isinstance(err, MemoryError):
        return EnvironmentFault(f"{path or 'run'}: out of memory; free memory or use fewer --workers, then re-run")
    code = getattr(err, "errno", None)
    where = path if path is not None else getattr(err, "filename", None)
    reason = os.strerror(code) if code else str(err)
    name = errno.errorcode.get(code, "") if code else ""
    suffix = f" (errno {name})" if name else ""
    return EnvironmentFault(f"{where}: {reason}{suffix}; free space or fix the permissions, then re-run")


__all__ = ["ENVIRONMENT_ERRNOS", "EnvironmentFault", "environment_fault", "is_environment_fault"]
