"""The result record of an evaluation and how answers are scored: parse each answer (a failure takes the train-mean
profile), then score the model and every baseline of `baselines` on the same samples. `stage` fills it; `report`
writes it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.contracts.answer import parse_answer
from pipeline.stages.evaluate import baselines as baselines_mod
from pipeline.stages.evaluate.metrics import Scores, per_sample_errors, score

MODEL_NAME = "model"
"""Row name of the scored predictions in tables (baselines use `pipeline.stages.evaluate.baselines.BASELINE_NAMES`)."""

FAILURE_POLICY = "train_mean"
"""How a parse failure is scored: the train split's per-step mean target replaces the whole answer."""

PATH_FAILURE_POLICY = "points_given"
"""How an incomplete path answer is scored (`trajectory_scoring`): on the points it gives; no fallback."""

SUBSETS = ("all", "parsed")
"""Sample subsets every predictor is scored on: every sample, and the samples whose answer parsed."""


@dataclass
class EvaluationResult:
    """Everything the report needs: per-sample arrays, parse outcomes, baselines and scores."""

    # (N,) sample ids, clip ids and segment indices, in split order.
    ids: list[str]
    clip_ids: list[str]
    segment_index: list[int]
    # (N,) raw answer texts.
    texts: list[str]
    # (N, n) ground truth: m/s and 1/m.
    true_velocity: np.ndarray
    true_curvature: np.ndarray
    # (N, n) scored model predictions (parse failures replaced by the train mean): m/s and 1/m.
    pred_velocity: np.ndarray
    pred_curvature: np.ndarray
    # (N,) whether each answer parsed to n finite pairs; (N,) pairs read; problems noted by the parser.
    parsed: np.ndarray
    n_pairs: np.ndarray
    problems: list[list[str]]
    # Baseline name -> ((N, n) m/s, (N, n) 1/m), in `pipeline.stages.evaluate.baselines.BASELINE_NAMES` order.
    baselines: dict[str, tuple[np.ndarray, np.ndarray]]
    # Subset ("all", "parsed") -> predictor name (model first, then baselines) -> scores.
    scores: dict[str, dict[str, Scores]]
    # Future length, s (step k is at (k + 1) * horizon_s / n).
    horizon_s: float
    # Provenance: model, adapter, predictions file, dataset dir/split/fingerprint, settings.
    info: dict[str, Any] = field(default_factory=dict)
    # Trajectory scores (`trajectory_scoring.TrajectoryResult`) when the dataset's targets include trajectories.
    trajectory: Any = None
    # The answers are (speed, curvature) lines and the motion fields above are scored. False for path answers
    # (`path_answer_result`): the motion arrays are (N, 0), `scores` and `baselines` are empty, and `parsed`,
    # `n_pairs` and `problems` are the first answers' completeness, points read and parser notes.
    motion: bool = True

    @property
    def n_samples(self) -> int:
        return len(self.ids)

    @property
    def n_failures(self) -> int:
        return int(np.sum(~self.parsed))

    @property
    def parse_failure_rate(self) -> float:
        return self.n_failures / self.n_samples if self.n_samples else float("nan")

    def per_sample(self) -> dict[str, np.ndarray]:
        """Per-sample model errors, each (N,): velocity_mae m/s, curvature_mae 1/m, ade m, fde m."""
        return per_sample_errors(
            self.pred_velocity, self.pred_curvature, self.true_velocity, self.true_curvature, self.horizon_s
        )


def fallback_predictions(
    texts: list[str], n: int, mean_velocity: np.ndarray, mean_curvature: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[list[str]]]:
    """Parse answers; a failure (fewer than n readable finite pairs) takes the train-mean profile.

    Args:
        texts: N answer texts (anything; never raises on garbled text).
        n: pairs expected per answer.
        mean_velocity, mean_curvature: (n,) train-mean profile, m/s and 1/m.

    Returns:
        velocity (N, n) m/s, curvature (N, n) 1/m, parsed (N,) bool, n_pairs (N,) int, problems per answer.
    """
    n_samples = len(texts)
    velocity = np.empty((n_samples, n))
    curvature = np.empty((n_samples, n))
    parsed = np.zeros(n_samples, dtype=bool)
    n_pairs = np.zeros(n_samples, dtype=np.int64)
    problems: list[list[str]] = []
    for i, text in enumerate(texts):
        answer = parse_answer(text, n=n)
        n_pairs[i] = answer.n_pairs
        problems.append(list(answer.problems))
        if answer.complete:
            parsed[i] = True
            velocity[i] = answer.velocity
            curvature[i] = answer.curvature
        else:
            velocity[i] = mean_velocity
            curvature[i] = mean_curvature
    return velocity, curvature, parsed, n_pairs, problems


def path_answer_result(rows: Any, texts: list[str], trajectory: Any) -> EvaluationResult:
    """The record of path answers (dataset targets "trajectory" or "both"): no motion scored, the trajectory's
    scores attached.

    Args:
        rows: the scored dataset rows (`id`, `clip_id`, `segment_index`), in answer order.
        texts: N answer texts (the first of each sample's k).
        trajectory: their `trajectory_scoring.TrajectoryResult`.
    """
    empty = np.empty((len(texts), 0))
    return EvaluationResult(
        ids=[str(x) for x in rows["id"]],
        clip_ids=[str(x) for x in rows["clip_id"]],
        segment_index=[int(x) for x in rows["segment_index"]],
        texts=list(texts),
        true_velocity=empty,
        true_curvature=empty,
        pred_velocity=empty,
        pred_curvature=empty,
        parsed=trajectory.complete.copy(),
        n_pairs=trajectory.n_points.copy(),
        problems=trajectory.problems,
        baselines={},
        scores={},
        horizon_s=trajectory.true_xy.shape[1] / trajectory.target_hz,
        trajectory=trajectory,
        motion=False,
    )


def score_answers(
    texts: list[str],
    targets: dict[str, Any],
    mean_velocity: np.ndarray,
    mean_curvature: np.ndarray,
    window_s: float = 1.0,
    horizon_s: float = 1.0,
    history_model: baselines_mod.HistoryRidge | None = None,
) -> EvaluationResult:
    """Parse and score N answers against the targets, with every baseline on the same samples.

    Args:
        texts: N answer texts, in the order of `targets`.
        targets: columns of the scored split: `id`, `clip_id`, `segment_index` (N,) and `velocity`, `curvature`,
            `history_velocity`, `history_curvature` as (N, n) arrays (m/s, 1/m).
        mean_velocity, mean_curvature: (n,) train-mean profile (fallback and baseline).
        window_s, horizon_s: input and future lengths, s.
        history_model: the history-only ridge fit on the train split (`baselines.fit_history_ridge`); without it
            the `history_ridge` baseline is left out.
    """
    tv = np.asarray(targets["velocity"], dtype=np.float64)
    tk = np.asarray(targets["curvature"], dtype=np.float64)
    if len(texts) != len(tv):
        raise ValueError(f"{len(texts)} answers for {len(tv)} samples")
    n = tv.shape[1]
    pv, pk, parsed, n_pairs, problems = fallback_predictions(texts, n, mean_velocity, mean_curvature)
    base = baselines_mod.all_baselines(
        targets["history_velocity"],
        targets["history_curvature"],
        n,
        mean_velocity,
        mean_curvature,
        window_s=window_s,
        horizon_s=horizon_s,
        history_model=history_model,
    )
    predictors = {MODEL_NAME: (pv, pk), **base}
    scores: dict[str, dict[str, Scores]] = {}
    for subset in SUBSETS:
        rows = np.ones(len(tv), dtype=bool) if subset == "all" else parsed
        scores[subset] = {
            name: score(v[rows], k[rows], tv[rows], tk[rows], horizon_s=horizon_s)
            for name, (v, k) in predictors.items()
        }
    return EvaluationResult(
        ids=[str(x) for x in targets["id"]],
        clip_ids=[str(x) for x in targets["clip_id"]],
        segment_index=[int(x) for x in targets["segment_index"]],
        texts=list(texts),
        true_velocity=tv,
        true_curvature=tk,
        pred_velocity=pv,
        pred_curvature=pk,
        parsed=parsed,
        n_pairs=n_pairs,
        problems=problems,
        baselines=base,
        scores=scores,
        horizon_s=horizon_s,
    )


__all__ = [
    "FAILURE_POLICY",
    "MODEL_NAME",
    "PATH_FAILURE_POLICY",
    "SUBSETS",
    "EvaluationResult",
    "fallback_predictions",
    "path_answer_result",
    "score_answers",
]
