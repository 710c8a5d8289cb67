"""The CLI's console: one rich `Console` on stderr for log lines and progress bars, third-party noise kept quiet.

On a terminal, log records go through rich's `RichHandler` on the same console as the bar (`RichProgress`), so
they print above a bar that stays whole. Off a terminal they are plain timestamped lines, and progress is logged
periodically (`pipeline.core.progress.LogProgress`). Third-party loggers show warnings only, unless `verbose`:
HTTP request lines (httpx, urllib3), huggingface_hub and transformers notices, DeepSpeed's accelerator notice
(errors only) and the tqdm bars of huggingface_hub and transformers ("Loading weights", "Writing model shards").
Libraries that install their own console handler (huggingface_hub, datasets, transformers, DeepSpeed) have it
refused, so that their records reach this console too.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from pipeline.core.progress import BYTES, DEFAULT_INTERVAL_S, LogProgress, ProgressSink

QUIET_LOGGERS = {
    "httpx": logging.WARNING,
    "httpx2": logging.WARNING,
    "httpcore": logging.WARNING,
    "httpcore2": logging.WARNING,
    "urllib3": logging.WARNING,
    "filelock": logging.WARNING,
    "fsspec": logging.WARNING,
    "werkzeug": logging.WARNING,
    "matplotlib": logging.WARNING,
    "PIL": logging.WARNING,
    "huggingface_hub": logging.WARNING,
    "datasets": logging.WARNING,
    "transformers": logging.WARNING,
    "accelerate": logging.WARNING,
    "peft": logging.WARNING,
    "torch": logging.WARNING,
    "DeepSpeed": logging.ERROR,  # "Setting accelerator to CPU ..." is a warning on every CPU run
}
"""Top-level logger name -> least level shown without --verbose (with it: INFO and up)."""

OWN_HANDLER_LIBRARIES = ("huggingface_hub", "datasets", "transformers", "DeepSpeed")
"""Libraries that attach a console `StreamHandler` to their root logger (and some stop propagation)."""

PROGRESS_BARS_ENV = "HF_HUB_DISABLE_PROGRESS_BARS"
"""huggingface_hub's switch for its tqdm bars, which transformers' bars follow too."""

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""Line format off a terminal (files, pipes, job logs)."""


class _ThirdPartyFilter(logging.Filter):
    """Lets a third-party record through at or above its library's threshold (`QUIET_LOGGERS`, or INFO)."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        threshold = QUIET_LOGGERS.get(record.name.split(".", 1)[0])
        if threshold is None:
            return True
        return record.levelno >= (logging.INFO if self.verbose else threshold)


class _AdoptedLogger(logging.Logger):
    """A library root logger that refuses the library's own console handler and always propagates to the root."""

    def addHandler(self, hdlr: logging.Handler) -> None:  # noqa: N802 - logging's name
        if type(hdlr) is not logging.StreamHandler:
            super().addHandler(hdlr)

    @property
    def propagate(self) -> bool:  # type: ignore[override]
        return True

    @propagate.setter
    def propagate(self, value: bool) -> None:
        pass


def adopt_library_logger(name: str) -> None:
    """Route a library's root logger to ours, whether the library has configured it yet or not."""
    existing = logging.Logger.manager.loggerDict.get(name)
    if isinstance(existing, logging.Logger):
        for handler in list(existing.handlers):
            if type(handler) is logging.StreamHandler:
                existing.removeHandler(handler)
        existing.propagate = True
        return
    # Not created yet: create it as an `_AdoptedLogger`, so the library's later `addHandler` is refused.
    previous = logging.getLoggerClass()
    logging.setLoggerClass(_AdoptedLogger)
    try:
        logging.getLogger(name)
    finally:
        logging.setLoggerClass(previous)


def _quiet_progress_bars() -> Callable[[], None]:
    """Turn off huggingface_hub's and transformers' tqdm bars (unless the user set the variable); returns undo."""
    if PROGRESS_BARS_ENV in os.environ:
        return lambda: None
    os.environ[PROGRESS_BARS_ENV] = "1"
    # Already imported (in-process callers) read the variable at import time: switch them off (and back) by call.
    hub = "huggingface_hub" in sys.modules
    transformers_logging = sys.modules.get("transformers.utils.logging")
    if hub:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if transformers_logging is not None:
        transformers_logging.disable_progress_bar()

    def undo() -> None:
        os.environ.pop(PROGRESS_BARS_ENV, None)
        if hub:
            from huggingface_hub.utils import enable_progress_bars

            enable_progress_bars()
        if transformers_logging is not None:
            transformers_logging.enable_progress_bar()

    return undo


@dataclass
class ConsoleSettings:
    """What `setup` configured: the console and the progress-line interval the CLI's sinks use."""

    console: Console = field(default_factory=lambda: Console(stderr=True))
    progress_interval_s: float = DEFAULT_INTERVAL_S
    verbose: bool = False


_current = ConsoleSettings()


def setup(
    verbose: bool = False, progress_interval_s: float = DEFAULT_INTERVAL_S, console: Console | None = None
) -> Callable[[], None]:
    """Send logging to `console` (default: stderr), quiet third-party loggers; returns a function that undoes it.

    Args:
        verbose: DEBUG for pipeline's loggers, INFO for third-party ones, and their tqdm bars.
        progress_interval_s: least seconds between two progress lines when `console` is not a terminal.
        console: the console for log lines and bars (tests pass a recording one).
    """
    global _current
    console = console or Console(stderr=True)
    previous, _current = _current, ConsoleSettings(console, progress_interval_s, verbose)
    handler: logging.Handler
    if console.is_terminal:
        handler = RichHandler(console=console, show_path=verbose, markup=False, log_time_format="[%X]")
    else:
        handler = logging.StreamHandler(console.file)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_ThirdPartyFilter(verbose))
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.addHandler(handler)
    for name in OWN_HANDLER_LIBRARIES:
        adopt_library_logger(name)
    logging.captureWarnings(True)
    undo_bars = (lambda: None) if verbose else _quiet_progress_bars()

    def restore() -> None:
        global _current
        root.removeHandler(handler)
        root.setLevel(old_level)
        logging.captureWarnings(False)
        undo_bars()
        _current = previous

    return restore


def progress_sink() -> ProgressSink:
    """A progress sink on the configured console: a bar on a terminal, else periodic log lines."""
    return for_console(_current.console, _current.progress_interval_s)


class RichProgress:
    """A rich progress bar on `console` (default: a new stderr console); one task at a time."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._bar: Progress | None = None
        self._task = None

    def start(self, description: str, total: int | None, unit: str = "") -> None:
        self.finish()
        counts: tuple[ProgressColumn, ...] = (
            (DownloadColumn(), TransferSpeedColumn()) if unit == BYTES else (MofNCompleteColumn(),)
        )
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            *counts,
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def describe(self, description: str) -> None:
        """Replace the running task's description (e.g. with failure counts and a rate)."""
        if self._bar is not None:
            self._bar.update(self._task, description=description)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def for_console(console: Console, interval_s: float = DEFAULT_INTERVAL_S) -> ProgressSink:
    """A bar on `console` when it is a terminal, else periodic log lines every `interval_s` s at most."""
    return RichProgress(console) if console.is_terminal else LogProgress(interval_s)


__all__ = [
    "LOG_FORMAT",
    "QUIET_LOGGERS",
    "ConsoleSettings",
    "RichProgress",
    "for_console",
    "adopt_library_logger",
    "progress_sink",
    "setup",
]
