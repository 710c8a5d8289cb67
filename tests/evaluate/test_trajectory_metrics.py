"""Trajectory metrics against hand-computed values: ADE/FDE, both L2 conventions, partial answers, minADE."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.stages.evaluate.trajectory_metrics import (
    L2_AT,
    L2_AVERAGED,
    min_over_samples,
    score_trajectories,
    step_index,
)

# 4 points at 2 Hz: 0.5, 1.0, 1.5 and 2.0 s.
HZ = 2.0
TRUE = np.zeros((2, 4, 2))
# Sample A is 1, 2, 3, 4 m off along x; sample B only at the last point, 5 m off (3, 4).
PRED = np.array(
    [
        [[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0]],
        [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [3.0, 4.0]],
    ]
)


def test_both_l2_conventions_by_hand() -> None:
    scores = score_trajectories(PRED, TRUE, HZ)
    # Averaged over the steps up to t: A (1+2)/2 = 1.5, B 0 at 1 s; A 2.5, B 5/4 at 2 s.
    assert scores["l2_m"][L2_AVERAGED] == pytest.approx({"1s": 0.75, "2s": 1.875})
    # At t: A 2, B 0 at 1 s; A 4, B 5 at 2 s. 3 s is beyond the future: left out.
    assert scores["l2_m"][L2_AT] == pytest.approx({"1s": 1.0, "2s": 4.5})


def test_ade_fde_by_horizon_and_over_the_whole_future() -> None:
    scores = score_trajectories(PRED, TRUE, HZ)
    assert scores["ade_m"] == pytest.approx({"1s": 0.75, "all": 1.875})
    assert scores["fde_m"] == pytest.approx({"1s": 1.0, "all": 4.5})
    assert scores["coverage"] == 1.0 and scores["samples"] == 2


def test_a_partial_answer_is_scored_on_the_points_it_gives() -> None:
    pred = PRED.copy()
    pred[0, 2:] = np.nan  # sample A gave its first two points only
    scores = score_trajectories(pred, TRUE, HZ)
    # Averaged to 2 s: A over its two points (1.5), B 1.25. At 2 s: only B (5).
    assert scores["l2_m"][L2_AVERAGED]["2s"] == pytest.approx((1.5 + 1.25) / 2)
    assert scores["l2_m"][L2_AT]["2s"] == pytest.approx(5.0)
    assert scores["coverage"] == pytest.approx(6 / 8)


def test_step_index_only_on_the_grid_and_within_the_future() -> None:
    assert step_index(1.0, 30, 30.0) == 29
    assert step_index(6.4, 192, 30.0) == 191
    assert step_index(1.0, 29, 30.0) is None
    assert step_index(0.25, 4, 2.0) is None


def test_min_ade_and_fde_pick_the_best_answer_each() -> None:
    true = np.zeros((1, 2, 2))
    # Answer 0: errors 1, 3 (ADE 2, FDE 3); answer 1: errors 0, 3.5 (ADE 1.75, FDE 3.5); answer 2 not given.
    preds = np.array([[[[1.0, 0.0], [3.0, 0.0]], [[0.0, 0.0], [0.0, 3.5]], [[np.nan] * 2] * 2]])
    assert min_over_samples(preds, true) == pytest.approx({"min_ade_m": 1.75, "min_fde_m": 3.0})


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="differ"):
        score_trajectories(np.zeros((1, 3, 2)), np.zeros((1, 4, 2)), HZ)
    with pytest.raises(ValueError, match=r"\(N, k, n, 2\)"):
        min_over_samples(np.zeros((1, 3, 2)), np.zeros((1, 3, 2)))
