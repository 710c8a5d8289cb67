"""How long `parse_answer` takes on a runaway answer (one digit repeated N times, as a small model stuck on a digit
writes it, or a server that ignores `max_tokens`).

Run: `uv run python benchmarks/answer_parse_bench.py [--sizes 1000 10000 100000 1000000]`

Prints the best of 3 wall-clock times per size and the ratio of each time to the previous one over the ratio of the
sizes: about 1 for a parser linear in the answer's length (the backtracking pattern it replaced was quadratic: 6.6 s
at 10 k digits, 363 s at 80 k).
"""

from __future__ import annotations

import argparse
import time

from pipeline.contracts.answer import parse_answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    previous: tuple[int, float] | None = None
    for size in args.sizes:
        text = "9" * size
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            parse_answer(text)
            best = min(best, time.perf_counter() - started)
        growth = f"{(best / previous[1]) / (size / previous[0]):.2f}" if previous else "-"
        print(f'parse_answer("9" * {size:>9,}): {best * 1e3:9.2f} ms  (time ratio / size ratio: {growth})')
        previous = (size, best)


if __name__ == "__main__":
    main()
