"""Progress reporting: library code calls a `ProgressSink`; only the CLI chooses how it shows.

On a terminal, the CLI draws one rich bar (`pipeline.cli.console.RichProgress`). Elsewhere (a file, a pipe, a
cluster job log), `LogProgress` logs one plain line at most every `interval_s` seconds with done/total, rate and ETA,
and no control characters. `pipeline.cli.console.for_console` picks one of the two.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from rich.filesize import decimal

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 30.0
"""Seconds between two progress lines of `LogProgress` (the CLI's `--progress-interval` default)."""

BYTES = "B"
"""The `unit` of a loop that counts bytes (shown as kB/MB/GB and MB/s)."""


class ProgressSink(Protocol):
    def start(self, description: str, total: int | None, unit: str = "") -> None:
        """Begin a loop of `total` steps (None: unknown) counted in `unit` ("" items, `BYTES` bytes)."""

    def advance(self, n: int = 1) -> None: ...

    def describe(self, description: str) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    """Reports nothing (library default, tests)."""

    def start(self, description: str, total: int | None, unit: str = "") -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def describe(self, description: str) -> None:
        pass

    def finish(self) -> None:
        pass


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _amount(n: float, unit: str) -> str:
    return decimal(int(n)) if unit == BYTES else f"{int(n):,}"


def _rate(per_s: float, unit: str) -> str:
    return f"{decimal(int(per_s))}/s" if unit == BYTES else f"{per_s:.3g}/s"


class LogProgress:
    """Progress as log lines (INFO on `pipeline.core.progress`): at start, at most every `interval_s` s, and at finish.

    A line reads `segment clips: 3/10 (30 %), 0.52/s, elapsed 0:00:05, ETA 0:00:13`. Thread-safe (the download
    advances it from its transfer threads).
    """

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        if not interval_s >= 0:
            raise ValueError(f"progress interval must be >= 0 s, got {interval_s}")
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._description: str | None = None

    def start(self, description: str, total: int | None, unit: str = "") -> None:
        self.finish()
        with self._lock:
            self._description, self._total, self._unit = description, total, unit
            self._done = 0
            self._started = self._last = self._clock()
            self._emit(self._started)

    def advance(self, n: int = 1) -> None:
        with self._lock:
            if self._description is None:
                return
            self._done += n
            now = self._clock()
            if now - self._last >= self.interval_s:
                self._last = now
                self._emit(now)

    def describe(self, description: str) -> None:
        """Name the running loop `description` in the lines that follow."""
        with self._lock:
            if self._description is not None:
                self._description = description

    def finish(self) -> None:
        with self._lock:
            if self._description is None:
                return
            elapsed = self._clock() - self._started
            rate = f", {_rate(self._done / elapsed, self._unit)}" if elapsed > 0 else ""
            log.info("%s: done, %s in %s%s", self._description, _amount(self._done, self._unit), _clock(elapsed), rate)
            self._description = None

    def _emit(self, now: float) -> None:
        elapsed = now - self._started
        parts = [_amount(self._done, self._unit)]
        if self._total:
            parts[0] += f"/{_amount(self._total, self._unit)} ({100 * self._done / self._total:.0f} %)"
        rate = self._done / elapsed if elapsed > 0 else math.nan
        if math.isfinite(rate):
            parts.append(_rate(rate, self._unit))
        parts.append(f"elapsed {_clock(elapsed)}")
        if self._total and rate > 0:
            parts.append(f"ETA {_clock(max(self._total - self._done, 0) / rate)}")
        log.info("%s: %s", self._description, ", ".join(parts))
