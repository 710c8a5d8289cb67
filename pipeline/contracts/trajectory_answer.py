"""The assistant's trajectory answer: N future (x, y) points, one per line. Pure: strings and numpy only.

Format (docs/ARCHITECTURE.md, "Trajectory answer format"): line k is ``f"{x:.2f},{y:.2f}"``, the ego vehicle's
position in metres at ``(k + 1) / target_hz`` s after the end of the video, in the ego frame at the end of the video
(x forward, y left), e.g. ``12.34,-0.56``; nothing else. Rounding error <= 0.005 m per coordinate; ``-0.00`` is
written as ``0.00`` so that one value has one spelling.

Reading follows `pipeline.contracts.answer.parse_answer`: linear in the answer's length (the same pair search), the
text read capped at `max_answer_chars`, a partial answer keeps the points it gives (the rest NaN), and every
problem is noted with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.contracts.answer import DECIMALS, excerpt, line_pairs

# A point farther than this from the start is a decoding runaway (e.g. `3555555555.00`), not a prediction: 100 m/s
# (360 km/h) for 10 s.
MAX_DISTANCE_M = 1000.0
# Characters read per expected point, beyond a fixed allowance: a line is about 12 characters (``-123.45,-6.78``),
# so this leaves room for stray text while a runaway answer is cut short.
CHARS_PER_POINT = 64
CHARS_ALLOWANCE = 1024
_NEGATIVE_ZERO = "-0." + "0" * DECIMALS


def max_answer_chars(n: int) -> int:
    """Characters of an answer that `parse_trajectory` reads for n points (the rest is ignored, with a problem)."""
    return CHARS_ALLOWANCE + CHARS_PER_POINT * max(int(n), 1)


def _fixed(value: float) -> str:
    text = f"{value:.{DECIMALS}f}"
    return text[1:] if text == _NEGATIVE_ZERO else text


def format_trajectory(xy: np.ndarray) -> str:
    """Write the answer text.

    Args:
        xy: (N, 2) future positions, m (x forward, y left).

    Returns:
        N lines ``"{x:.2f},{y:.2f}"`` joined by ``"\\n"`` (no trailing newline).

    Raises:
        ValueError: `xy` is not (N, 2) or holds a non-finite value.
    """
    points = np.asarray(xy, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"xy must have shape (N, 2), got {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError("xy must be finite to be written as an answer")
    return "\n".join(f"{_fixed(x)},{_fixed(y)}" for x, y in points.tolist())


def trajectory_prompt(n: int, target_hz: float) -> str:
    """The user instruction for n future points at `target_hz`: the task, the format, its units and step times."""
    step_s = 1.0 / target_hz
    return (
        f"Predict the path of the car (the ego vehicle) over the next {n * step_s:g} s at {n} evenly spaced times "
        f"({step_s:g} s apart; the first is {step_s:g} s and the last {n * step_s:g} s after the end of the video). "
        f"Answer with exactly {n} lines, one per time step in order, each written as `x,y`: the car's position in "
        f"metres relative to where it is at the end of the video, x forward and y to the left (negative = right), "
        f"both with {DECIMALS} decimals, for example `12.34,-0.56`. Write nothing else."
    )


@dataclass
class ParsedTrajectory:
    """What `parse_trajectory` could read from one answer text."""

    # (n, 2) float32 positions, m (x forward, y left); NaN rows where the point is missing or unreadable.
    xy: np.ndarray
    # Number of points read into `xy` (0..n); extra points beyond n are not counted.
    n_points: int
    # Human-readable notes on what could not be read (missing points, stray text, extra points, cut text).
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when all n points were read and are finite (stray text or extra points are tolerated)."""
        return self.n_points == len(self.xy) and bool(np.all(np.isfinite(self.xy)))


def parse_trajectory(text: str, n: int) -> ParsedTrajectory:
    """Read up to n (x, y) points from a model's answer. Never raises on any `text`.

    Points are ``number , number`` on one line (several per line are accepted); lines without a point, points beyond
    the n-th and text beyond `max_answer_chars(n)` are reported in `problems`; missing points are NaN, and so are
    points farther than `MAX_DISTANCE_M` (reported as implausible).

    Args:
        text: the answer text (anything; a non-string gives an empty result with a problem).
        n: number of points expected (>= 1).

    Returns:
        A `ParsedTrajectory` with an (n, 2) float32 array, m.
    """
    n = max(int(n), 1)
    xy = np.full((n, 2), np.nan, dtype=np.float32)
    if not isinstance(text, str):
        return ParsedTrajectory(xy, 0, [f"answer is not text ({type(text).__name__})"])
    problems: list[str] = []
    limit = max_answer_chars(n)
    if len(text) > limit:
        problems.append(f"answer cut at {limit} of {len(text)} characters")
        text = text[:limit]
    found = extra = 0
    for line_no, match in line_pairs(text, problems):
        if found >= n:
            extra += 1
            continue
        x, y = float(match.group(1)), float(match.group(2))
        if np.hypot(x, y) <= MAX_DISTANCE_M:
            xy[found] = (x, y)
        else:
            problems.append(f"line {line_no}: implausible point {excerpt(match.group(0))!r}")
        found += 1
    if found < n:
        problems.append(f"missing points: read {found} of {n}")
    if extra:
        problems.append(f"ignored {extra} extra point(s) after the first {n}")
    return ParsedTrajectory(xy, found, problems)


__all__ = [
    "MAX_DISTANCE_M",
    "ParsedTrajectory",
    "format_trajectory",
    "max_answer_chars",
    "parse_trajectory",
    "trajectory_prompt",
]
