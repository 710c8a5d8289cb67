"""Scoring of trajectory answers (dataset_meta.json "targets" of "trajectory" or "both"): parse k answers per sample
(`pipeline.contracts.trajectory_answer`), score the first against `future_xyh` beside the trajectory baselines, and
minADE/minFDE over all k when k > 1. `stage` fills it; `trajectory_report` writes it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.contracts.trajectory_answer import parse_trajectory
from pipeline.core.errors import PipelineError
from pipeline.stages.evaluate import trajectory_baselines as tb
from pipeline.stages.evaluate.trajectory_metrics import L2_CONVENTIONS, min_over_samples, score_trajectories

if TYPE_CHECKING:
    from pathlib import Path

    import datasets
    import pyarrow as pa

MODEL_NAME = "model"
TRAJECTORY_SUBSETS = ("all", "complete")
"""Subsets: every sample (the model scored on the points it gave), and the samples whose first answer is complete."""

TRAJECTORY_TARGETS = ("trajectory", "both")
"""Values of dataset_meta.json targets.targets that turn trajectory scoring on."""


@dataclass
class TrajectoryResult:
    """Parsed trajectory answers, baselines and scores of one evaluation."""

    ids: list[str]
    # (N,) lists of k answer texts each.
    texts: list[list[str]]
    # (N, n, 2) true future positions and (N, H, 2) past positions, m (ego frame at the window's end).
    true_xy: np.ndarray
    history_xy: np.ndarray
    # (N, k, n, 2) parsed answers, m; NaN where a point is missing or unreadable.
    samples_xy: np.ndarray
    # (N,) whether the first answer gave n finite points; (N,) points read from it; its parser notes.
    complete: np.ndarray
    n_points: np.ndarray
    problems: list[list[str]]
    # Baseline name -> (N, n, 2) positions, m, in `trajectory_baselines.TRAJECTORY_BASELINE_NAMES` order.
    baselines: dict[str, np.ndarray]
    # Subset -> predictor name (model first) -> `trajectory_metrics.score_trajectories` dict.
    scores: dict[str, dict[str, dict[str, Any]]]
    # minADE/minFDE over the k answers (k > 1 only), m.
    min_over_k: dict[str, float] | None
    # Point rate, Hz, and the dataset's target settings (dataset_meta.json "targets").
    target_hz: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def pred_xy(self) -> np.ndarray:
        """(N, n, 2) the first answer of each sample, m."""
        return self.samples_xy[:, 0]

    def to_json(self) -> dict[str, Any]:
        """Every number, with its units and the L2 conventions' names, JSON-ready (NaN becomes None)."""
        n_samples, k, n, _ = self.samples_xy.shape
        return _finite_or_none(
            {
                "units": {"distance": "m", "time": "s", "rate": "Hz"},
                "target_settings": self.settings,
                "n_samples": n_samples,
                "n_points": n,
                "target_hz": self.target_hz,
                "answers_per_sample": k,
                "incomplete_answers": int(np.sum(~self.complete)),
                "l2_conventions": L2_CONVENTIONS,
                "scores": self.scores,
                "min_over_answers": self.min_over_k,
            }
        )


def _finite_or_none(value: Any) -> Any:
    """`value` with every non-finite float, in nested dicts and lists, replaced by None."""
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def xyh_column(rows: datasets.Dataset | pa.RecordBatch, key: str) -> np.ndarray:
    """(N, m, 3) float64 rows [x m, y m, heading rad] of a trajectory column of equal-length lists, from a split's
    rows or one Arrow batch of them (`split_batches`).

    Raises:
        PipelineError: the column is missing or its rows differ in length.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if key not in rows.column_names:
        raise PipelineError(f'dataset has no column {key} (its dataset_meta.json "targets" asks for trajectories)')
    if isinstance(rows, pa.RecordBatch):
        column = rows.column(key)
    else:
        column = rows.select_columns([key]).with_format("arrow")[:].column(key)
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if len(column) and (lengths.min() != lengths.max()):
        raise PipelineError(f"dataset column {key}: rows of different lengths ({lengths.min()} to {lengths.max()})")
    values = pc.list_flatten(pc.list_flatten(column)).to_numpy(zero_copy_only=False).astype(np.float64)
    if values.size != 3 * (int(lengths[0]) if len(column) else 0) * len(column):
        raise PipelineError(f"dataset column {key}: expected [x, y, heading] rows")
    return values.reshape(len(column), -1, 3)


def train_trajectory_ridge(dataset: Path) -> tb.TrajectoryRidge:
    """`trajectory_baselines.TrajectoryRidge` fit on the dataset's train split, read a batch at a time
    (`split_batches`), so memory stays independent of the split's size.

    Raises:
        PipelineError: the train split is missing, lacks `history_xyh` or `future_xyh`, is empty, or its rows differ
            in length.
    """
    from pipeline.contracts.dataset_reader import split_batches

    batches = (
        (xyh_column(batch, "history_xyh"), xyh_column(batch, "future_xyh")[..., :2])
        for batch in split_batches(dataset, "train", ["history_xyh", "future_xyh"])
        if batch.num_rows
    )
    try:
        return tb.fit_trajectory_ridge(batches)
    except ValueError as err:
        raise PipelineError(f"--dataset {dataset}: no trajectory ridge from the train split ({err})") from None


def _parse(texts: list[list[str]], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[str]]]:
    k = max(len(t) for t in texts) if texts else 1
    samples = np.full((len(texts), k, n, 2), np.nan)
    complete = np.zeros(len(texts), dtype=bool)
    n_points = np.zeros(len(texts), dtype=np.int64)
    problems: list[list[str]] = []
    for i, answers in enumerate(texts):
        for j, text in enumerate(answers):
            parsed = parse_trajectory(text, n)
            samples[i, j] = parsed.xy
            if j == 0:
                complete[i], n_points[i] = parsed.complete, parsed.n_points
                problems.append(list(parsed.problems))
    return samples, complete, n_points, problems


def score_trajectory_answers(
    ids: list[str],
    texts: list[list[str]],
    future_xyh: np.ndarray,
    history_xyh: np.ndarray,
    settings: dict[str, Any],
    ridge: tb.TrajectoryRidge | None = None,
) -> TrajectoryResult:
    """Parse and score N samples' k answers against `future_xyh`, with every trajectory baseline.

    Args:
        ids: N sample ids. texts: N lists of k answer texts.
        future_xyh, history_xyh: (N, n, 3) and (N, H, 3) rows [m, m, rad].
        settings: dataset_meta.json "targets" (`target_hz` and `history_hz` in Hz are read).
        ridge: the history ridge fit on the train split; without it `history_ridge` is left out.
    """
    true_xy = np.asarray(future_xyh, dtype=np.float64)[..., :2]
    n = true_xy.shape[1]
    target_hz = float(settings.get("target_hz", 30.0))
    history_hz = float(settings.get("history_hz", target_hz))
    samples, complete, n_points, problems = _parse(texts, n)
    base = tb.all_trajectory_baselines(history_xyh, n, target_hz, history_hz, ridge=ridge)
    predictors = {MODEL_NAME: samples[:, 0], **base}
    scores = {
        subset: {name: score_trajectories(xy[rows], true_xy[rows], target_hz) for name, xy in predictors.items()}
        for subset, rows in (("all", slice(None)), ("complete", complete))
    }
    min_k = min_over_samples(samples, true_xy) if samples.shape[1] > 1 else None
    return TrajectoryResult(
        ids=list(ids),
        texts=texts,
        true_xy=true_xy,
        history_xy=np.asarray(history_xyh, dtype=np.float64)[..., :2],
        samples_xy=samples,
        complete=complete,
        n_points=n_points,
        problems=problems,
        baselines=base,
        scores=scores,
        min_over_k=min_k,
        target_hz=target_hz,
        settings=dict(settings),
    )


__all__ = [
    "TRAJECTORY_SUBSETS",
    "TRAJECTORY_TARGETS",
    "TrajectoryResult",
    "score_trajectory_answers",
    "train_trajectory_ridge",
    "xyh_column",
]
