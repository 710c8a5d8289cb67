"""The trajectory answer format: round trip, partial and malformed answers, the size cap, the prompt."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.contracts.trajectory_answer import (
    MAX_DISTANCE_M,
    format_trajectory,
    max_answer_chars,
    parse_trajectory,
    trajectory_prompt,
)


def test_format_writes_one_line_per_point_with_two_decimals() -> None:
    xy = np.array([[12.344, -0.556], [0.0, -0.001], [-3.0, 7.5]])
    assert format_trajectory(xy) == "12.34,-0.56\n0.00,0.00\n-3.00,7.50"


def test_round_trip_within_rounding() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(-80.0, 80.0, size=(64, 2))
    parsed = parse_trajectory(format_trajectory(xy), n=64)
    assert parsed.complete and parsed.n_points == 64 and parsed.problems == []
    np.testing.assert_allclose(parsed.xy, xy, atol=0.005 + 1e-5)


def test_partial_answer_keeps_its_points_and_says_how_many() -> None:
    parsed = parse_trajectory("1.00,0.10\n2.00,0.20", n=4)
    assert not parsed.complete and parsed.n_points == 2
    np.testing.assert_allclose(parsed.xy[:2], [[1.0, 0.1], [2.0, 0.2]], rtol=1e-6)
    assert np.isnan(parsed.xy[2:]).all()
    assert parsed.problems == ["missing points: read 2 of 4"]


def test_malformed_lines_are_reported_with_their_reason() -> None:
    text = "Sure! Here is the path:\n1.00,0.00\nabc\n99999.00,0.00\n3.00,0.00\n4.00,0.00"
    parsed = parse_trajectory(text, n=3)
    assert parsed.n_points == 3 and not parsed.complete  # the runaway point counts but is NaN
    np.testing.assert_allclose(parsed.xy[[0, 2]], [[1.0, 0.0], [3.0, 0.0]])
    assert np.isnan(parsed.xy[1]).all()
    assert parsed.problems == [
        "line 1: unreadable text 'Sure! Here is the path:'",
        "line 3: unreadable text 'abc'",
        "line 4: implausible point '99999.00,0.00'",
        "ignored 1 extra point(s) after the first 3",
    ]


@pytest.mark.parametrize("text", [None, 3.5, b"1,2"])
def test_non_text_is_a_failure_not_an_exception(text: object) -> None:
    parsed = parse_trajectory(text, n=2)  # type: ignore[arg-type]
    assert parsed.n_points == 0 and not parsed.complete and "not text" in parsed.problems[0]


def test_text_beyond_the_cap_is_not_read() -> None:
    n = 2
    limit = max_answer_chars(n)
    text = "1.00,1.00\n" + " " * limit + "\n2.00,2.00"
    parsed = parse_trajectory(text, n=n)
    assert parsed.n_points == 1
    assert parsed.problems[0] == f"answer cut at {limit} of {len(text)} characters"


def test_a_point_at_the_distance_limit_is_read() -> None:
    parsed = parse_trajectory(f"{MAX_DISTANCE_M:.2f},0.00", n=1)
    assert parsed.complete and parsed.xy[0, 0] == MAX_DISTANCE_M


def test_format_refuses_bad_shapes_and_non_finite_values() -> None:
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        format_trajectory(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        format_trajectory(np.array([[np.nan, 0.0]]))


def test_prompt_states_count_step_times_units_and_axes() -> None:
    text = trajectory_prompt(32, 10.0)
    assert "exactly 32 lines" in text and "0.1 s apart" in text and "last 3.2 s after" in text
    assert "metres" in text and "x forward and y to the left" in text and "`12.34,-0.56`" in text
