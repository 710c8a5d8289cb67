"""Report parts of trajectory scoring (`trajectory_scoring.TrajectoryResult`): the Markdown tables and the top-down
plot of predicted against true trajectories. Plots use matplotlib's object API, as `report` does; texts from the
data (sample ids) are drawn with math parsing off, so a `$` in an id is drawn as it is."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.atomic import atomic_path
from pipeline.stages.evaluate.trajectory_metrics import L2_AT, L2_AVERAGED, L2_CONVENTIONS
from pipeline.stages.evaluate.trajectory_scoring import TrajectoryResult

TOP_DOWN_PLOT = "trajectories_top_down.png"
"""File `plot_top_down` writes beside the other plots."""

BASELINES_TEXT = (
    "Baselines from the past trajectory only: `constant_velocity` (the last step's velocity vector held),"
    " `ctrv` (constant speed and yaw rate along an arc), `history_ridge` (ridge regression from the past rows,"
    " fit on the train split)."
)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def trajectory_tables(result: TrajectoryResult, subset: str) -> list[tuple[list[str], list[list[str]]]]:
    """Two tables over `subset` as (header, rows) of formatted cells, model first then the baselines: ADE/FDE by
    horizon (and the share of points given), then L2 by time under both conventions, each named in its header."""
    scores = result.scores[subset]
    first = next(iter(scores.values()))
    horizons = list(first["ade_m"])
    l2_times = list(first["l2_m"][L2_AT])
    ade_header = [f"ADE {h} (m)" for h in horizons] + [f"FDE {h} (m)" for h in horizons] + ["points given"]
    l2_header = [f"L2 {t}, {name} (m)" for name in (L2_AVERAGED, L2_AT) for t in l2_times]
    ade_rows, l2_rows = [], []
    for name, s in scores.items():
        cells = [_fmt(s["ade_m"][h]) for h in horizons] + [_fmt(s["fde_m"][h]) for h in horizons]
        cells.append(f"{100 * s['coverage']:.1f} %" if math.isfinite(s["coverage"]) else "n/a")
        ade_rows.append([name, *cells])
        l2_rows.append([name, *(_fmt(s["l2_m"][c][t]) for c in (L2_AVERAGED, L2_AT) for t in l2_times)])
    return [(["predictor", *ade_header], ade_rows), (["predictor", *l2_header], l2_rows)]


def _tables(result: TrajectoryResult, subset: str) -> list[str]:
    (ade_header, ade_rows), (l2_header, l2_rows) = trajectory_tables(result, subset)
    return [*_markdown(ade_header, ade_rows), "", *_markdown(l2_header, l2_rows)]


def min_over_answers_text(result: TrajectoryResult) -> str | None:
    """The minADE/minFDE sentence (k > 1 answers per sample), else None."""
    if result.min_over_k is None:
        return None
    return (
        f"minADE over the {result.samples_xy.shape[1]} answers: {_fmt(result.min_over_k['min_ade_m'])} m;"
        f" minFDE: {_fmt(result.min_over_k['min_fde_m'])} m (each minimised on its own)."
    )


def first_answer_errors(result: TrajectoryResult) -> tuple[np.ndarray, np.ndarray]:
    """(N,) ADE and (N,) FDE of each sample's first answer over the points it gave, m (NaN: none given, or the last
    point missing)."""
    distance = np.linalg.norm(result.pred_xy - result.true_xy, axis=-1)  # (N, n), NaN where not given
    given = np.isfinite(distance)
    ade = np.where(given.any(axis=1), np.nansum(distance, axis=1) / np.maximum(given.sum(axis=1), 1), np.nan)
    return ade, distance[:, -1] if distance.shape[1] else np.full(len(distance), np.nan)


def trajectory_headline(result: TrajectoryResult) -> str:
    """The terminal's table of a trajectory evaluation: ADE by horizon and the final FDE per predictor, over all
    samples, as aligned plain text (m)."""
    scores = result.scores["all"]
    first = next(iter(scores.values()))
    horizons = list(first["ade_m"])
    header = ["predictor", *(f"ADE {h} (m)" for h in horizons), f"FDE {horizons[-1]} (m)", "points given"]
    rows = [
        [
            name,
            *(_fmt(s["ade_m"][h]) for h in horizons),
            _fmt(s["fde_m"][horizons[-1]]),
            f"{100 * s['coverage']:.1f} %" if math.isfinite(s["coverage"]) else "n/a",
        ]
        for name, s in scores.items()
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in [header, *rows]
    ]
    title = f"trajectories, all samples (N = {len(result.ids)})"
    return "\n".join([title, lines[0], "-" * len(lines[0]), *lines[1:]])


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def trajectory_markdown(result: TrajectoryResult) -> str:
    """The report.md section: settings, tables over all and complete answers, minADE, the L2 conventions, the plot."""
    n_samples, k, n, _ = result.samples_xy.shape
    n_complete = int(result.complete.sum())
    lines = [
        "## Trajectory",
        "",
        f"- Targets: {n} points at {result.target_hz:g} Hz ({n / result.target_hz:g} s), x forward and y left in"
        " metres in the ego frame at the end of the video; every distance below is in m",
        f"- Answers per sample: {k}; the first is scored in the tables. Incomplete first answers:"
        f" {n_samples - n_complete} of {n_samples} (scored on the points they give; see `points given`)",
        "- L2 conventions: "
        + "; ".join(f"**{name}** ({source})" for name, source in L2_CONVENTIONS.items())
        + ". Both are over this dataset's points, not 2 Hz ones.",
        "",
        f"### All samples (N = {n_samples})",
        "",
        *_tables(result, "all"),
        "",
        f"### Complete answers only (N = {n_complete})",
        "",
        *_tables(result, "complete"),
        "",
    ]
    if (min_text := min_over_answers_text(result)) is not None:
        lines += [min_text, ""]
    lines += [
        BASELINES_TEXT,
        "",
        f"![trajectories from above]({TOP_DOWN_PLOT})",
        "",
    ]
    return "\n".join(lines)


def example_indices(result: TrajectoryResult, n_examples: int) -> list[int]:
    """Up to `n_examples` samples spread from the rightmost to the leftmost true end point."""
    if not len(result.ids) or n_examples == 0:
        return []
    order = np.argsort(result.true_xy[:, -1, 1], kind="stable")
    picks = np.linspace(0, len(order) - 1, min(n_examples, len(order))).round().astype(int)
    return [int(order[p]) for p in dict.fromkeys(picks)]


def plot_top_down(result: TrajectoryResult, path: Path, n_examples: int = 6) -> None:
    """Past, true and predicted trajectories seen from above (x forward to the right, y left upwards, m) for a few
    samples: the model's k answers (the first drawn thick), constant velocity and CTRV."""
    with atomic_path(path) as tmp:
        top_down_figure(result, example_indices(result, n_examples) or [0]).savefig(tmp, format="png")


def top_down_figure(result: TrajectoryResult, indices: list[int]) -> Any:
    """The `plot_top_down` figure of the samples `indices` (a matplotlib `Figure`, three panels a row)."""
    from matplotlib.figure import Figure

    cols = min(3, len(indices))
    rows = math.ceil(len(indices) / cols)
    fig = Figure(figsize=(4 * cols, 3.6 * rows), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, i in zip(axes, indices, strict=False):
        _draw_sample(ax, result, i)
    for ax in axes[len(indices) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    return fig


def _draw_sample(ax: Any, result: TrajectoryResult, i: int) -> None:
    start = np.zeros((1, 2))
    ax.plot(*result.history_xy[i].T, color="grey", linewidth=1.5, label="past")
    ax.plot(*np.vstack([start, result.true_xy[i]]).T, color="black", linewidth=2, label="true")
    for j, xy in enumerate(result.samples_xy[i]):
        ax.plot(*np.vstack([start, xy]).T, color="tab:blue", linewidth=2 if j == 0 else 0.8,
                alpha=1.0 if j == 0 else 0.5, label="model" if j == 0 else None)  # fmt: skip
    for name, color, style in (("constant_velocity", "tab:green", ":"), ("ctrv", "tab:orange", "--")):
        if name in result.baselines:
            xy = np.vstack([start, result.baselines[name][i]])
            ax.plot(*xy.T, color=color, linestyle=style, linewidth=1.2, label=name)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x forward (m)")
    ax.set_ylabel("y left (m)")
    status = "complete" if result.complete[i] else f"{int(result.n_points[i])} points"
    ax.set_title(f"{result.ids[i]} ({status})", fontsize=8, parse_math=False)
    ax.grid(alpha=0.3)


__all__ = [
    "BASELINES_TEXT",
    "TOP_DOWN_PLOT",
    "example_indices",
    "first_answer_errors",
    "min_over_answers_text",
    "plot_top_down",
    "top_down_figure",
    "trajectory_markdown",
    "trajectory_tables",
]
