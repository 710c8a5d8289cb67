"""Report files of the evaluation stage: metrics.json, report.md, predictions.csv and PNG plots.

Plots are drawn with matplotlib's object API (`matplotlib.figure.Figure`, Agg canvas), so no global pyplot
state and no display are needed. Every file is written through `pipeline.core.atomic` (temp name, then rename).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.atomic import atomic_path, write_json, write_text
from pipeline.stages.evaluate.metrics import HORIZON_POINTS_S, Scores, integrate_path
from pipeline.stages.evaluate.scoring import MODEL_NAME, EvaluationResult
from pipeline.stages.evaluate.served_errors import failed_share_verdict

REPORT_FILES = (
    "metrics.json",
    "report.md",
    "predictions.csv",
    "error_vs_horizon.png",
    "scatter_velocity.png",
    "scatter_curvature.png",
    "example_trajectories.png",
)
"""Files `write_report` writes into the output directory: all with motion answers, the first two with path answers
(which add `trajectory_report.TOP_DOWN_PLOT`)."""

_COLUMNS: tuple[tuple[str, Callable[[Scores], float], str], ...] = (
    ("velocity MAE (m/s)", lambda s: s.velocity_mae, "{:.3f}"),
    ("velocity RMSE (m/s)", lambda s: s.velocity_rmse, "{:.3f}"),
    ("curvature MAE (1/m)", lambda s: s.curvature_mae, "{:.3g}"),
    ("curvature RMSE (1/m)", lambda s: s.curvature_rmse, "{:.3g}"),
    ("ADE (m)", lambda s: s.ade, "{:.3f}"),
    ("FDE (m)", lambda s: s.fde, "{:.3f}"),
    *((f"displacement @{t:g} s (m)", lambda s, t=t: s.displacement_at(t), "{:.3f}") for t in HORIZON_POINTS_S),
)


def _fmt(value: float, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else spec.format(value)


def _rows(result: EvaluationResult, subset: str) -> list[list[str]]:
    rows = []
    for name, s in result.scores[subset].items():
        cells = [name] + [_fmt(value(s), spec) for _, value, spec in _COLUMNS]
        if name == MODEL_NAME and subset == "all":
            cells.append(f"{result.n_failures}/{result.n_samples} ({100 * result.parse_failure_rate:.1f} %)")
        elif name == MODEL_NAME:
            cells.append(f"{result.n_failures} excluded")
        else:
            cells.append("-")
        rows.append(cells)
    return rows


def _header() -> list[str]:
    return ["predictor"] + [title for title, _, _ in _COLUMNS] + ["parse failures"]


def table(result: EvaluationResult, subset: str = "all") -> tuple[list[str], list[list[str]]]:
    """The model-vs-baselines table over `subset` as (header, rows) of formatted cells."""
    return _header(), _rows(result, subset)


def headline_table(result: EvaluationResult, subset: str = "all") -> str:
    """The model-vs-baselines table over `subset` ("all" or "parsed") as aligned plain text, for a terminal; with
    trajectory targets, the trajectory table over all samples (their answers are paths, not motion)."""
    if result.trajectory is not None:
        from pipeline.stages.evaluate.trajectory_report import trajectory_headline

        return trajectory_headline(result.trajectory)
    header = _header()
    rows = _rows(result, subset)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells))
    n = next(iter(result.scores[subset].values())).n_samples
    title = f"{subset} samples (N = {n})"
    return "\n".join([title, lines[0], "-" * len(lines[0]), *lines[1:]])


def markdown_table(result: EvaluationResult, subset: str = "all") -> str:
    """The model-vs-baselines table over `subset` as a Markdown table."""
    header = _header()
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in _rows(result, subset)]
    return "\n".join(lines)


def metrics_dict(result: EvaluationResult) -> dict[str, Any]:
    """Every number of the evaluation plus provenance, JSON-ready (NaN -> null); the motion scores only when the
    answers are (speed, curvature) lines, the trajectory's when the targets include trajectories."""
    motion = {
        "n_steps": int(result.true_velocity.shape[1]),
        "horizon_s": result.horizon_s,
        "parse_failures": result.n_failures,
        "parse_failure_rate": None if result.n_samples == 0 else result.parse_failure_rate,
        "scores": {
            subset: {name: s.to_dict() for name, s in by_name.items()} for subset, by_name in result.scores.items()
        },
    }
    return {
        **result.info,
        "n_samples": result.n_samples,
        "answers": "motion" if result.motion else "trajectory",
        **(motion if result.motion else {}),
        **({"trajectory": result.trajectory.to_json()} if result.trajectory is not None else {}),
    }


def _join(values: np.ndarray, spec: str) -> str:
    return " ".join(spec.format(float(x)) for x in values)


def predictions_csv(result: EvaluationResult) -> str:
    """One row per sample: ids, parse outcome, model errors, predicted and true sequences, raw answer text."""
    per = result.per_sample()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "id",
            "clip_id",
            "segment_index",
            "parsed",
            "n_pairs",
            "problems",
            "velocity_mae_mps",
            "curvature_mae_inv_m",
            "ade_m",
            "fde_m",
            "pred_velocity_mps",
            "true_velocity_mps",
            "pred_curvature_inv_m",
            "true_curvature_inv_m",
            "text",
        ]
    )
    for i, sample_id in enumerate(result.ids):
        writer.writerow(
            [
                sample_id,
                result.clip_ids[i],
                result.segment_index[i],
                bool(result.parsed[i]),
                int(result.n_pairs[i]),
                "; ".join(result.problems[i]),
                f"{per['velocity_mae'][i]:.6g}",
                f"{per['curvature_mae'][i]:.6g}",
                f"{per['ade'][i]:.6g}",
                f"{per['fde'][i]:.6g}",
                _join(result.pred_velocity[i], "{:.4f}"),
                _join(result.true_velocity[i], "{:.4f}"),
                _join(result.pred_curvature[i], "{:.6g}"),
                _join(result.true_curvature[i], "{:.6g}"),
                result.texts[i],
            ]
        )
    return buf.getvalue()


def _provenance_lines(result: EvaluationResult) -> list[str]:
    """report.md's lines on where the answers came from and what was scored."""
    info = result.info
    source = (
        f"predictions file `{info.get('predictions_file')}`"
        if info.get("predictions_file")
        else f"model `{info.get('model')}`" + (f" + adapter `{info['adapter']}`" if info.get("adapter") else "")
    )
    lines = [
        f"- Answers: {source}",
        f"- Dataset: `{info.get('dataset_dir')}`, split `{info.get('split')}`: {result.n_samples} samples scored"
        f" (of {info.get('split_size', result.n_samples)}); fingerprint `{str(info.get('dataset_fingerprint'))[:16]}`",
    ]
    video = (info.get("settings") or {}).get("video_settings")
    if video:
        values = ", ".join(f"{k} {v}" for k, v in video.items())
        lines.append(f"- Video input: {values} (from {info.get('video_settings_source')})")
    if info.get("server") and failed_share_verdict(info["server"]):
        lines.append(f"- **Served run failed:** {failed_share_verdict(info['server'])}")
    if info.get("samples_without_prediction"):
        lines.append(f"- {info['samples_without_prediction']} samples of the split had no prediction (not scored)")
    return lines + _clip_list_lines(info.get("clips"))


def report_markdown(result: EvaluationResult) -> str:
    """report.md: provenance, the failure policy, the tables over all and parsed samples, and the plots; for path
    answers, provenance and the trajectory section (`trajectory_report.trajectory_markdown`) only."""
    if not result.motion:
        from pipeline.stages.evaluate.trajectory_report import trajectory_markdown

        title = ["# Trajectory prediction: evaluation", "", *_provenance_lines(result), ""]
        return "\n".join(title) + "\n" + trajectory_markdown(result.trajectory)
    n_parsed = result.n_samples - result.n_failures
    horizons = ", ".join(f"{t:g} s" for t in HORIZON_POINTS_S)
    lines = [
        "# Next-second motion prediction: evaluation",
        "",
        *_provenance_lines(result),
        f"- Targets: {result.true_velocity.shape[1]} steps over {result.horizon_s:g} s (speed m/s, curvature 1/m);"
        " paths integrate speed and curvature held constant over each step, as exact arcs from the origin facing +x",
        f"- Parse failures: {result.n_failures} of {result.n_samples}"
        f" ({100 * result.parse_failure_rate:.1f} %). An answer with fewer than"
        f" {result.true_velocity.shape[1]} readable pairs is a failure and is **scored as the train-mean prediction**"
        ' (the per-step mean target of the train split) in the "all samples" table.',
        "",
        f"## All samples (N = {result.n_samples})",
        "",
        markdown_table(result, "all"),
        "",
        f"## Parsed answers only (N = {n_parsed})",
        "",
        "Baselines are scored on the same samples.",
        "",
        markdown_table(result, "parsed"),
        "",
        f"## Error at {horizons} (all samples)",
        "",
        "| predictor | "
        + " | ".join(f"velocity MAE @{t:g} s (m/s) | displacement @{t:g} s (m)" for t in HORIZON_POINTS_S)
        + " |",
        "|---|" + "---:|" * (2 * len(HORIZON_POINTS_S)),
    ]
    for name, s in result.scores["all"].items():
        cells = []
        for t in HORIZON_POINTS_S:
            h = s.at_horizon(t)
            cells += [_fmt(h["velocity_mae"], "{:.3f}"), _fmt(h["displacement"], "{:.3f}")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Baselines: `zero_motion` (standing still), `train_mean` (per-step mean of the train targets), `constant`"
        " (last speed and curvature of the input second), `linear_extrapolation` (least-squares line through the input"
        " second, speed clamped at 0), `history_ridge` (history-only learned: ridge regression from the input second's"
        " speeds and curvatures to the next second's, fit on the train split). Displacement @t is the mean distance"
        " between the predicted and true positions t seconds ahead (the path-L2 of open-loop planning benchmarks).",
        "",
        "## Plots",
        "",
        "![error vs horizon](error_vs_horizon.png)",
        "",
        "![predicted vs true velocity](scatter_velocity.png) ![predicted vs true curvature](scatter_curvature.png)",
        "",
        "![example trajectories](example_trajectories.png)",
        "",
        "Per-sample errors and answers: `predictions.csv`; every number: `metrics.json`.",
        "",
    ]
    return "\n".join(lines)


def _clip_list_lines(clips: dict[str, Any] | None, shown: int = 20) -> list[str]:
    """report.md's lines on `--clips`: how many listed clips were found, and the missing ones with why."""
    if not clips:
        return []
    missing = clips["missing"]
    lines = [
        f"- Clips: only those listed in `{clips['file']}`: {clips['found']} of {clips['listed']} found"
        f" ({clips['samples']} samples), {len(missing)} missing" + (":" if missing else "")
    ]
    lines += [f"  - `{m['clip_id']}`: {m['reason']}" for m in missing[:shown]]
    if len(missing) > shown:
        lines.append(f"  - ... and {len(missing) - shown} more (all in metrics.json)")
    return lines


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def plot_error_vs_horizon(result: EvaluationResult, path: Path) -> None:
    """Velocity MAE, curvature MAE and displacement error against time ahead, model and baselines (all samples)."""
    fig = _figure(13, 4)
    axes = fig.subplots(1, 3)
    panels = (
        ("velocity_mae_by_step", "velocity MAE (m/s)"),
        ("curvature_mae_by_step", "curvature MAE (1/m)"),
        ("displacement_by_step", "displacement error (m)"),
    )
    by_name: dict[str, Scores] = result.scores["all"]
    for ax, (attr, label) in zip(axes, panels, strict=True):
        for i, (name, s) in enumerate(by_name.items()):
            ax.plot(
                s.step_times_s,
                getattr(s, attr),
                label=name,
                linewidth=2.5 if i == 0 else 1.2,
                linestyle="-" if i == 0 else "--",
            )
        ax.set_xlabel("time ahead (s)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"error vs horizon, all samples (N = {result.n_samples})")
    _save(fig, path)


def plot_scatter(result: EvaluationResult, path: Path, quantity: str) -> None:
    """Predicted vs true `quantity` ("velocity" or "curvature") over every step; failures (train mean) in grey."""
    true = getattr(result, f"true_{quantity}")
    pred = getattr(result, f"pred_{quantity}")
    unit = "m/s" if quantity == "velocity" else "1/m"
    fig = _figure(5.5, 5)
    ax = fig.subplots()
    ok = result.parsed
    if np.any(ok):
        ax.scatter(true[ok].ravel(), pred[ok].ravel(), s=6, alpha=0.5, label="parsed answers")
    if np.any(~ok):
        ax.scatter(true[~ok].ravel(), pred[~ok].ravel(), s=6, alpha=0.5, color="grey", label="failures (train mean)")
    lo = float(min(true.min(), pred.min()))
    hi = float(max(true.max(), pred.max()))
    pad = 0.05 * (hi - lo) if hi > lo else 1e-3
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="black", linewidth=1, label="y = x")
    ax.set_xlabel(f"true {quantity} ({unit})")
    ax.set_ylabel(f"predicted {quantity} ({unit})")
    ax.set_title(f"predicted vs true {quantity}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def example_indices(result: EvaluationResult, n_examples: int) -> list[int]:
    """Up to `n_examples` samples spread over the range of true final heading (right turns to left turns)."""
    if result.n_samples == 0 or n_examples == 0:
        return []
    dt = result.horizon_s / result.true_velocity.shape[1]
    heading = np.sum(result.true_velocity * result.true_curvature, axis=1) * dt
    order = np.argsort(heading, kind="stable")
    picks = np.linspace(0, len(order) - 1, min(n_examples, len(order))).round().astype(int)
    return [int(order[p]) for p in dict.fromkeys(picks)]


def plot_trajectories(result: EvaluationResult, path: Path, n_examples: int = 6) -> None:
    """True vs predicted next-second paths (and the constant baseline) for a few samples, x forward, y left."""
    indices = example_indices(result, n_examples) or [0]
    cols = min(3, len(indices))
    rows = math.ceil(len(indices) / cols)
    fig = _figure(4 * cols, 3.6 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    dt = result.horizon_s / result.true_velocity.shape[1]
    const = result.baselines.get("constant")
    for ax, i in zip(axes, indices, strict=False):
        paths = [("true", result.true_velocity[i], result.true_curvature[i], "black", "-")]
        paths.append(("model", result.pred_velocity[i], result.pred_curvature[i], "tab:blue", "-"))
        if const is not None:
            paths.append(("constant", const[0][i], const[1][i], "tab:orange", ":"))
        for label, v, k, color, style in paths:
            xy = np.vstack([[0.0, 0.0], integrate_path(v, k, dt)])
            ax.plot(xy[:, 0], xy[:, 1], color=color, linestyle=style, label=label, linewidth=2)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("x forward (m)")
        ax.set_ylabel("y left (m)")
        status = "parsed" if result.parsed[i] else "failure"
        ax.set_title(f"{result.ids[i]} ({status})", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(indices) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8)
    _save(fig, path)


def write_report(result: EvaluationResult, output_dir: Path, n_examples: int = 6) -> dict[str, Path]:
    """Write metrics.json and report.md into `output_dir` (created if missing), then with motion answers the other
    files of `REPORT_FILES`, with path answers the top-down plot (`trajectory_report`); returns name -> path. The
    report files of an earlier run of the other kind (`--overwrite`) are removed."""
    from pipeline.stages.evaluate.trajectory_report import TOP_DOWN_PLOT, plot_top_down

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: output_dir / name for name in REPORT_FILES}
    write_json(paths["metrics.json"], json.loads(json.dumps(metrics_dict(result), default=_json_default)))
    write_text(paths["report.md"], report_markdown(result))
    stale = REPORT_FILES[2:] if not result.motion else (TOP_DOWN_PLOT,)
    for name in stale:
        (output_dir / name).unlink(missing_ok=True)
    if not result.motion:
        paths = {"metrics.json": paths["metrics.json"], "report.md": paths["report.md"]}
        paths[TOP_DOWN_PLOT] = output_dir / TOP_DOWN_PLOT
        plot_top_down(result.trajectory, paths[TOP_DOWN_PLOT], n_examples=n_examples)
        return paths
    write_text(paths["predictions.csv"], predictions_csv(result))
    plot_error_vs_horizon(result, paths["error_vs_horizon.png"])
    plot_scatter(result, paths["scatter_velocity.png"], "velocity")
    plot_scatter(result, paths["scatter_curvature.png"], "curvature")
    plot_trajectories(result, paths["example_trajectories.png"], n_examples=n_examples)
    return paths


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


__all__ = [
    "REPORT_FILES",
    "example_indices",
    "headline_table",
    "table",
    "markdown_table",
    "metrics_dict",
    "plot_error_vs_horizon",
    "plot_scatter",
    "plot_trajectories",
    "predictions_csv",
    "report_markdown",
    "write_report",
]
