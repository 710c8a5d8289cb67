"""The assistant's answer text: n (velocity, curvature) pairs, one per line. Pure: strings and numpy only.

Format (docs/ARCHITECTURE.md, "Answer format"): line k is ``f"{v:.2f},{c * 1000:.2f}"`` where ``v`` is the speed
in m/s at ``(k + 1) / n`` s after the end of the video and ``c`` the curvature in 1/m, written in 1/km so that two
decimals resolve 1e-5 1/m (rounding error <= 5e-6 1/m; velocity rounding error <= 0.005 m/s). ``-0.00`` is
written as ``0.00`` so that one value has one spelling.

Token cost (measured with the Qwen2/2.5/3 vocabulary, which splits numbers into single digits): a line such as
``12.35,-1.23`` is 11 tokens with its newline (digits, ``.``, ``,-`` or ``,``, ``\n``), so 30 pairs cost about
300 tokens at city speeds (``5.00,0.00``) to 360 at highway speeds with sharp curves (``25.50,12.30``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Curvature is written in 1/km: 1 1/m = 1000 1/km.
CURVATURE_SCALE = 1000.0
# Decimal places of both numbers in the answer text.
DECIMALS = 2

# How a negative value that rounds to zero is formatted (written without its sign).
_NEGATIVE_ZERO = "-0." + "0" * DECIMALS
# One pair on one line: two decimal numbers separated by a comma (spaces and tabs allowed, no newline).
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_PAIR_RE = re.compile(rf"({_NUMBER})[ \t]*,[ \t]*({_NUMBER})")
# The same pattern, except that a pair never starts right after a digit. Searching with `_PAIR_RE` tries every start
# inside a run of digits, each one scanning the run to its end: quadratic in the run's length. A pair that starts
# right after a digit is never the leftmost one (the pair starting at that digit matches too), unless the search
# starts there, and `_pairs` tries that one start with `_PAIR_RE` itself: the same pairs, in linear time.
_PAIR_SEARCH_RE = re.compile(rf"([-+]?(?<!\d)(?:\d+(?:\.\d*)?|\.\d+))[ \t]*,[ \t]*({_NUMBER})")
# Magnitudes no car reaches: a pair beyond them is a decoding runaway (a small model stuck repeating a digit writes
# e.g. `3555555555.00`), not a prediction, and is unreadable, so one runaway cannot swamp an error mean.
MAX_SPEED_MPS = 100.0  # 360 km/h
MAX_CURVATURE_PER_M = 1.0  # a 1-m turning radius
# Longest excerpt of unreadable text quoted in a problem message.
_EXCERPT = 40


def _fixed(value: float) -> str:
    """`value` with `DECIMALS` decimals, never ``-0.00``."""
    text = f"{value:.{DECIMALS}f}"
    return text[1:] if text == _NEGATIVE_ZERO else text


def format_answer(velocity: np.ndarray, curvature: np.ndarray) -> str:
    """Write the answer text.

    Args:
        velocity: (n,) speed, m/s.
        curvature: (n,) curvature, 1/m (positive = left turn).

    Returns:
        n lines ``"{v:.2f},{c*1000:.2f}"`` joined by ``"\\n"`` (no trailing newline).

    Raises:
        ValueError: shapes differ, are not 1-D, or a value is not finite.
    """
    v = np.asarray(velocity, dtype=np.float64)
    c = np.asarray(curvature, dtype=np.float64)
    if v.ndim != 1 or c.shape != v.shape:
        raise ValueError(f"velocity and curvature must be 1-D of equal length, got {v.shape} and {c.shape}")
    return format_answers(v[None], c[None])[0]  # checks that the values are finite


def format_answers(velocity: np.ndarray, curvature: np.ndarray) -> list[str]:
    """`format_answer` of each row, formatted column-wise (Arrow string kernels) for speed on large batches.

    Args:
        velocity: (rows, n) speed, m/s.
        curvature: (rows, n) curvature, 1/m.

    Raises:
        ValueError: the shapes differ or are not 2-D, or a value is not finite.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    v = np.asarray(velocity, dtype=np.float64)
    c = np.asarray(curvature, dtype=np.float64)
    if v.ndim != 2 or c.shape != v.shape:
        raise ValueError(f"velocity and curvature must be 2-D of equal shape, got {v.shape} and {c.shape}")
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(c))):
        raise ValueError("velocity and curvature must be finite to be written as an answer")
    rows, n = v.shape
    if rows == 0 or n == 0:
        return [""] * rows
    pairs = np.empty((rows, n, 2))
    pairs[..., 0], pairs[..., 1] = v, c * CURVATURE_SCALE
    texts = _fixed_column(pairs.ravel())
    lines = pc.binary_join_element_wise(texts[0::2], texts[1::2], ",")
    answers = pa.ListArray.from_arrays(pa.array(np.arange(0, rows * n + 1, n, dtype=np.int32)), lines)
    return pc.binary_join(answers, "\n").to_pylist()


def _fixed_column(values: np.ndarray) -> Any:
    """`_fixed` of each value, as an Arrow string array: rounded to integer units of 10**-DECIMALS exactly as Python's
    correctly rounded `f"{x:.2f}"` (values near a rounding tie go through it), then looked up in a table of texts."""
    import pyarrow as pa
    import pyarrow.compute as pc

    scaled = values * 10.0**DECIMALS
    units = np.rint(scaled)
    # The product's rounding error is far below 1e-6 for |scaled| < 2**52: only near-ties can round differently.
    unsure = np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6
    units[unsure] = [int(_fixed(float(values[i])).replace(".", "")) for i in np.flatnonzero(unsure)]
    if np.abs(units).max(initial=0) > _TABLE_UNITS:
        return pa.array([_fixed(float(x)) for x in values], type=pa.string())
    return pc.take(_unit_texts(), pa.array(units.astype(np.int64) + _TABLE_UNITS))


# Texts of -_TABLE_UNITS .. _TABLE_UNITS units of 10**-DECIMALS: every curvature within the physical limit, in 1/km.
_TABLE_UNITS = round(MAX_CURVATURE_PER_M * CURVATURE_SCALE * 10**DECIMALS)


@functools.cache
def _unit_texts() -> Any:
    import pyarrow as pa

    unit = 10**DECIMALS

    def text(u: int) -> str:
        body = f"{abs(u) // unit}.{abs(u) % unit:0{DECIMALS}d}"
        return "-" + body if u < 0 else body

    return pa.array([text(u) for u in range(-_TABLE_UNITS, _TABLE_UNITS + 1)], type=pa.string())


@dataclass
class ParsedAnswer:
    """What `parse_answer` could read from one answer text."""

    # (n,) float32 speed, m/s; NaN where the pair is missing or unreadable.
    velocity: np.ndarray
    # (n,) float32 curvature, 1/m; NaN where the pair is missing or unreadable.
    curvature: np.ndarray
    # Number of pairs read into the arrays (0..n); extra pairs beyond n are not counted.
    n_pairs: int
    # Human-readable notes on what could not be read (missing pairs, stray text, extra pairs).
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when all n pairs were read and are finite (stray text or extra pairs are tolerated)."""
        return (
            self.n_pairs == len(self.velocity)
            and bool(np.all(np.isfinite(self.velocity)))
            and bool(np.all(np.isfinite(self.curvature)))
        )


def excerpt(text: str, limit: int = _EXCERPT) -> str:
    """`text` stripped and cut to `limit` characters (the last three then `...`), for a problem message."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def line_pairs(text: str, problems: list[str]) -> Iterator[tuple[int, re.Match[str]]]:
    """(1-based line number, match) of every ``number , number`` pair of `text`, in order, in linear time; a line's
    text outside its pairs is reported in `problems` before that line's pairs are yielded."""
    for line_no, line in enumerate(text.splitlines(), start=1):
        matches = _pairs(line)
        edges = [0, *(edge for match in matches for edge in match.span()), len(line)]
        rest = " ".join(line[a:b] for a, b in zip(edges[::2], edges[1::2], strict=True)).strip(" \t;,")
        if rest:
            problems.append(f"line {line_no}: unreadable text {excerpt(rest)!r}")
        yield from ((line_no, match) for match in matches)


def _pairs(line: str) -> list[re.Match[str]]:
    """`list(_PAIR_RE.finditer(line))`, in time linear in the line's length (`_PAIR_SEARCH_RE`)."""
    found: list[re.Match[str]] = []
    pos = 0
    while (match := _PAIR_RE.match(line, pos) or _PAIR_SEARCH_RE.search(line, pos)) is not None:
        found.append(match)
        pos = match.end()
    return found


def parse_answer(text: str, n: int = 30) -> ParsedAnswer:
    """Read up to n (velocity, curvature) pairs from a model's answer. Never raises on any `text`.

    Pairs are ``number , number`` on one line (several per line are accepted); lines without a pair and
    pairs beyond the n-th are reported in `problems`, missing pairs are NaN, and so are pairs beyond
    `MAX_SPEED_MPS` or `MAX_CURVATURE_PER_M` (reported as implausible).

    Args:
        text: the answer text (anything; a non-string gives an empty result with a problem).
        n: number of pairs expected (>= 1).

    Returns:
        A `ParsedAnswer` with (n,) float32 arrays: velocity m/s, curvature 1/m.
    """
    n = max(int(n), 1)
    velocity = np.full(n, np.nan, dtype=np.float32)
    curvature = np.full(n, np.nan, dtype=np.float32)
    problems: list[str] = []
    if not isinstance(text, str):
        return ParsedAnswer(velocity, curvature, 0, [f"answer is not text ({type(text).__name__})"])

    found = 0
    extra = 0
    for line_no, match in line_pairs(text, problems):
        if found >= n:
            extra += 1
            continue
        v = float(match.group(1))
        c = float(match.group(2)) / CURVATURE_SCALE
        if abs(v) <= MAX_SPEED_MPS and abs(c) <= MAX_CURVATURE_PER_M:
            velocity[found] = v
            curvature[found] = c
        else:
            problems.append(f"line {line_no}: implausible value {excerpt(match.group(0))!r}")
        found += 1
    if found < n:
        problems.append(f"missing pairs: read {found} of {n}")
    if extra:
        problems.append(f"ignored {extra} extra pair(s) after the first {n}")
    return ParsedAnswer(velocity, curvature, found, problems)


__all__ = [
    "CURVATURE_SCALE",
    "DECIMALS",
    "MAX_CURVATURE_PER_M",
    "MAX_SPEED_MPS",
    "ParsedAnswer",
    "excerpt",
    "format_answer",
    "line_pairs",
    "parse_answer",
]
