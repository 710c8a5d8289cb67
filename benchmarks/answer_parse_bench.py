"""How long `parse_answer` and `parse_trajectory` take on a runaway answer (one digit repeated N times, as a small
model stuck on a digit writes it, or a server that ignores `max_tokens`).

Run: `uv run python benchmarks/answer_parse_bench.py [--sizes 1000 10000 100000 1000000]`

Prints the best of 3 wall-clock times per size and the ratio of each time to the previous one over the ratio of the
sizes: about 1 for a parser linear in the answer's length (the backtracking pattern it replaced was quadratic: 6.6 s
at 10 k digits, 363 s at 80 k). `parse_trajectory` is asked for as many points as the answer has characters, so
that its size cap (`max_answer_chars`) does not cut the text and the ratio measures the parser itself.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from pipeline.contracts.answer import parse_answer
from pipeline.contracts.trajectory_answer import parse_trajectory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    parsers: dict[str, Callable[[str, int], object]] = {
        "parse_answer": lambda text, size: parse_answer(text),
        "parse_trajectory": lambda text, size: parse_trajectory(text, n=size),
    }
    for name, parse in parsers.items():
        previous: tuple[int, float] | None = None
        for size in args.sizes:
            text = "9" * size
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                parse(text, size)
                best = min(best, time.perf_counter() - started)
            growth = f"{(best / previous[1]) / (size / previous[0]):.2f}" if previous else "-"
            print(f'{name}("9" * {size:>9,}): {best * 1e3:9.2f} ms  (time ratio / size ratio: {growth})')
            previous = (size, best)


if __name__ == "__main__":
    main()
