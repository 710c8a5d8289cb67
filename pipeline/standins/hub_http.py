"""HTTP pieces of the local Hub server: byte ranges, file bodies that fault injection can cut mid-stream, and the
timestamps the Hub writes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pipeline.standins.hub_snapshot import READ_BLOCK

log = logging.getLogger(__name__)


class InjectedCut(Exception):
    """Raised inside a response body stream to drop the connection (fault injection)."""


class DropInjectedCut(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], InjectedCut))


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """`bytes=N-`, `bytes=N-M` or `bytes=-K` -> half-open (start, end); None if unsatisfiable or malformed."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            suffix = int(last)
            start, end = max(0, size - suffix), size
        else:
            start = int(first)
            end = min(int(last) + 1, size) if last else size
    except ValueError:
        return None
    if start >= size or end <= start:
        return None
    return start, end


def stream_file(path: Path, start: int, end: int, cut_after: int | None) -> Iterator[bytes]:
    """Yield bytes [start, end) of `path`; with `cut_after`, stop after that many bytes by raising `InjectedCut`."""
    sent = 0
    with path.open("rb") as f:
        f.seek(start)
        remaining = end - start
        while remaining > 0:
            n = min(READ_BLOCK, remaining)
            if cut_after is not None:
                n = min(n, cut_after - sent)
                if n <= 0:
                    log.info("fault injection: cutting %s after %d bytes", path.name, sent)
                    raise InjectedCut(path.name)
            block = f.read(n)
            if not block:
                break
            sent += len(block)
            remaining -= len(block)
            yield block


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


__all__ = ["DropInjectedCut", "InjectedCut", "now_iso", "parse_range", "stream_file"]
