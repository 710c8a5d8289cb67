"""Fault injection of the local Hub server: statuses and cut connections for chosen files (tests), or for every
file (`pipeline serve --fail-every N --cut-after BYTES`)."""

from __future__ import annotations

import threading

from pipeline.core.errors import PipelineError
from pipeline.standins.hub_snapshot import RepoSnapshot


class FaultInjection:
    """The fault hooks of `HubServer`; `_content_faults` decides each file GET's fault."""

    snapshot: RepoSnapshot
    _lock: threading.Lock

    def _init_faults(self) -> None:
        self._cuts: dict[str, tuple[int, int]] = {}
        self._statuses: dict[str, tuple[int, int]] = {}
        self.fail_every = 0
        self.cut_after: int | None = None
        self._gets = 0
        self._cut_once: set[str] = set()

    def inject_cut(self, path: str, after_bytes: int, times: int = 1) -> None:
        """Cut the next `times` GETs of repo `path` after `after_bytes` body bytes each."""
        if path not in self.snapshot.files:
            raise KeyError(path)
        with self._lock:
            self._cuts[path] = (int(after_bytes), int(times))

    def inject_status(self, path: str, status: int, times: int = 1) -> None:
        """Answer the next `times` GETs of repo `path` with HTTP `status` (e.g. 500) and no body."""
        if path not in self.snapshot.files:
            raise KeyError(path)
        with self._lock:
            self._statuses[path] = (int(status), int(times))

    def set_faults(self, fail_every: int = 0, cut_after: int | None = None) -> None:
        """Faults for every file: each `fail_every`-th file GET answers 500 (0: off; >= 2, so a retry can succeed);
        each file's first GET is cut after `cut_after` body bytes (None: off)."""
        if fail_every == 1 or fail_every < 0:
            raise PipelineError(f"--fail-every {fail_every}: must be 0 (off) or >= 2 (so that a retry can succeed)")
        if cut_after is not None and cut_after < 1:
            raise PipelineError(f"--cut-after {cut_after}: must be >= 1 byte")
        with self._lock:
            self.fail_every, self.cut_after = int(fail_every), cut_after
            self._cut_once.clear()

    def fault_summary(self) -> list[str]:
        """One line per active `set_faults` fault."""
        out = [f"1 in {self.fail_every} file requests answers HTTP 500"] if self.fail_every else []
        if self.cut_after is not None:
            out.append(f"each file's first GET is cut after {self.cut_after} bytes")
        return out

    def clear_cuts(self) -> None:
        with self._lock:
            self._cuts.clear()
            self._statuses.clear()

    def _content_faults(self, path: str) -> tuple[int | None, int | None]:
        """(HTTP status to fail this GET with or None, body bytes to cut it after or None)."""
        with self._lock:
            self._gets += 1
            if path in self._statuses:
                status, times = self._statuses.pop(path)
                if times > 1:
                    self._statuses[path] = (status, times - 1)
                return status, None
            if self.fail_every and self._gets % self.fail_every == 0:
                return 500, None
            if path in self._cuts:
                cut_after, times = self._cuts.pop(path)
                if times > 1:
                    self._cuts[path] = (cut_after, times - 1)
                return None, cut_after
            if self.cut_after is not None and path not in self._cut_once:
                self._cut_once.add(path)
                return None, self.cut_after
        return None, None


__all__ = ["FaultInjection"]
