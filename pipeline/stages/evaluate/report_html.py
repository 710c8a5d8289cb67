"""report.html: the evaluation as one self-contained offline page, beside report.md.

The page holds the run's settings, the model-vs-baselines tables, the report's plots (embedded as PNG data
URIs) and a gallery of held-out segments: the best, median and worst parsed answers by velocity error, plus parse
failures. Each gallery card shows the segment's mp4 in a `<video>` element, the true and predicted speed and
curvature over the next second, and both integrated paths in a top view. The mp4s are copied into `clips/` beside
the page and referenced by relative paths (the report directory is portable and survives deleting the segments),
or embedded as data URIs (`embed_videos`). No scripts, no CDN, no network fetch.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.atomic import atomic_path, write_text
from pipeline.stages.evaluate.metrics import integrate_path
from pipeline.stages.evaluate.output_dir import replace_clips
from pipeline.stages.evaluate.report import table
from pipeline.stages.evaluate.trajectory_report import TOP_DOWN_PLOT

if TYPE_CHECKING:
    from pipeline.stages.evaluate.scoring import EvaluationResult

log = logging.getLogger(__name__)

HTML_FILE = "report.html"
CLIPS_DIR = "clips"
"""Folder beside report.html that holds the gallery's mp4s (when not embedded)."""

PLOTS = (
    ("error_vs_horizon.png", "Error against time ahead (all samples)"),
    ("scatter_velocity.png", "Predicted vs true speed"),
    ("scatter_curvature.png", "Predicted vs true curvature"),
    ("example_trajectories.png", "Example next-second paths"),
)
"""Report plots embedded in the page, in order, with their captions."""

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:6px 0 0;color:#c6cbd6;font-size:14px}main{padding:8px 32px 32px;max-width:1400px}
h2{font-size:18px;margin:28px 0 10px}table{border-collapse:collapse;background:#fff;font-size:13px;margin-bottom:10px}
th,td{border:1px solid #dde1e8;padding:5px 9px;text-align:right}th{background:#eef0f4}
td:first-child,th:first-child{text-align:left}tr.model td{font-weight:600;background:#f1f6ff}
.settings td{text-align:left;font-family:ui-monospace,monospace;font-size:12px;max-width:900px;word-break:break-all}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:16px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:12px}
.card h3{margin:0 0 6px;font-size:15px}.tag{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;
color:#fff;margin-right:6px}.best{background:#2e7d32}.median{background:#1565c0}.worst{background:#c62828}
.failure{background:#6d4c41}.card video{width:100%;max-height:300px;background:#000;border-radius:4px}
.card img,.plots img{max-width:100%}.nums{font-size:13px;color:#3b4252;margin:6px 0}
.missing{padding:30px;background:#eee;text-align:center;color:#666}pre{white-space:pre-wrap;font-size:11px;
max-height:160px;overflow:auto;background:#f7f7f9;padding:6px}.plots figure{margin:0 0 16px}
figcaption{font-size:13px;color:#555}
"""


def _ranking_errors(result: EvaluationResult) -> dict[str, np.ndarray]:
    """Per-sample errors of the cards, each (N,), the gallery's ranking first: velocity MAE (m/s), curvature MAE
    (1/m), ADE and FDE (m) of motion answers; ADE and FDE (m) of each first path answer over the points it gave."""
    if result.motion:
        return result.per_sample()
    from pipeline.stages.evaluate.trajectory_report import first_answer_errors

    ade, fde = first_answer_errors(result.trajectory)
    return {"ade": ade, "fde": fde}


def gallery_indices(result: EvaluationResult, n_failures: int = 3) -> list[tuple[str, int]]:
    """(label, sample index) of the gallery: best, median and worst parsed answers by velocity MAE (complete path
    answers by ADE), each sample once, then up to `n_failures` parse failures (incomplete paths) in split order."""
    per = next(iter(_ranking_errors(result).values()))
    parsed = np.flatnonzero(result.parsed)
    picks: list[tuple[str, int]] = []
    if len(parsed):
        order = parsed[np.argsort(per[parsed], kind="stable")]
        for label, position in (("best", 0), ("median", (len(order) - 1) // 2), ("worst", len(order) - 1)):
            index = int(order[position])
            if index not in [i for _, i in picks]:
                picks.append((label, index))
    picks += [("failure", int(i)) for i in np.flatnonzero(~result.parsed)[:n_failures]]
    return picks


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _sample_figure(result: EvaluationResult, i: int) -> bytes:
    """PNG of one sample: speed and curvature against time ahead, and the two integrated paths seen from above."""
    from matplotlib.figure import Figure

    n = result.true_velocity.shape[1]
    dt = result.horizon_s / n
    t = (np.arange(n) + 1) * dt
    fig = Figure(figsize=(8.4, 2.6), dpi=100, layout="constrained")
    speed, curvature, top = fig.subplots(1, 3, width_ratios=(1, 1, 0.8))
    lines = (("true", "black", result.true_velocity[i], result.true_curvature[i]),)
    lines += (("model", "tab:blue", result.pred_velocity[i], result.pred_curvature[i]),)
    for label, color, v, k in lines:
        speed.plot(t, v, color=color, label=label, linewidth=2)
        curvature.plot(t, k, color=color, label=label, linewidth=2)
        xy = np.vstack([[0.0, 0.0], integrate_path(v, k, dt)])
        top.plot(-xy[:, 1], xy[:, 0], color=color, label=label, linewidth=2)  # forward up, left to the left
    speed.set(xlabel="time ahead (s)", ylabel="speed (m/s)")
    curvature.set(xlabel="time ahead (s)", ylabel="curvature (1/m)")
    top.plot([0], [0], marker="^", color="tab:red", markersize=9, linestyle="none")
    top.set(xlabel="lateral (m, right +)", ylabel="forward (m)", title="top view")
    top.set_aspect("equal", adjustable="datalim")
    for ax in (speed, curvature, top):
        ax.grid(alpha=0.3)
    speed.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _clip_name(sample_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", sample_id) + ".mp4"


def _video_tag(video: str | None, sample_id: str, output_dir: Path, embed: bool) -> tuple[str, str | None]:
    """The card's `<video>` element (or a note when the mp4 is missing) and the clip file name it copied."""
    path = Path(video) if video else None
    if path is None or not path.is_file():
        log.warning("report.html: segment video of %s not found (%s); shown without it", sample_id, video)
        return f'<div class="missing">video not found: {html.escape(str(video))}</div>', None
    if embed:
        src = _data_uri(path.read_bytes(), "video/mp4")
        name = None
    else:
        name = _clip_name(sample_id)
        target = output_dir / CLIPS_DIR / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(path, tmp)
        src = f"{CLIPS_DIR}/{name}"
    tag = f'<video controls loop muted preload="metadata"><source src="{html.escape(src)}" type="video/mp4"></video>'
    return tag, name


def _card(result: EvaluationResult, label: str, i: int, video_tag: str, errors: dict[str, np.ndarray]) -> str:
    problems = "; ".join(result.problems[i]) or "none"
    e = {key: float(values[i]) for key, values in errors.items()}
    if result.motion:
        status = (
            "parsed"
            if result.parsed[i]
            else f"parse failure ({int(result.n_pairs[i])} pairs read, scored as train mean)"
        )
        numbers = (
            f"velocity MAE {e['velocity_mae']:.3f} m/s · curvature MAE {e['curvature_mae']:.3g} 1/m · "
            f"ADE {e['ade']:.3f} m · FDE {e['fde']:.3f} m"
        )
        figure, alt = _sample_figure(result, i), "speed, curvature and top view"
    else:
        n = result.trajectory.true_xy.shape[1]
        status = "complete" if result.parsed[i] else f"incomplete ({int(result.n_pairs[i])} of {n} points read)"
        numbers = f"ADE {e['ade']:.3f} m · FDE {e['fde']:.3f} m (first answer, over the points given)"
        figure, alt = _path_figure(result, i), "past, true and predicted paths from above"
    return f"""<div class="card">
<h3><span class="tag {label}">{label}</span>{html.escape(result.ids[i])}</h3>
{video_tag}
<div class="nums">clip {html.escape(result.clip_ids[i])}, segment {result.segment_index[i]} · {html.escape(status)}<br>
{html.escape(numbers)}</div>
<img alt="{alt} of {html.escape(result.ids[i])}" src="{_data_uri(figure, "image/png")}">
<details><summary>answer (parser notes: {html.escape(problems)})</summary><pre>{html.escape(result.texts[i])}</pre>
</details></div>"""


def _path_figure(result: EvaluationResult, i: int) -> bytes:
    """PNG of one sample's past, true and predicted paths from above (`trajectory_report.top_down_figure`)."""
    from pipeline.stages.evaluate.trajectory_report import top_down_figure

    buf = io.BytesIO()
    top_down_figure(result.trajectory, [i]).savefig(buf, format="png")
    return buf.getvalue()


def trajectory_section(result: EvaluationResult, top_down_png: bytes | None) -> str:
    """The page's trajectory section: settings, ADE/FDE and L2 tables (both conventions, each named) over all and
    complete answers with the baselines, minADE over k answers, and the top-down plot; every text escaped."""
    from pipeline.stages.evaluate.trajectory_metrics import L2_CONVENTIONS
    from pipeline.stages.evaluate.trajectory_report import BASELINES_TEXT, min_over_answers_text, trajectory_tables

    traj = result.trajectory
    n_samples, k, n, _ = traj.samples_xy.shape
    n_complete = int(traj.complete.sum())
    notes = [
        f"Targets: {n} points at {traj.target_hz:g} Hz ({n / traj.target_hz:g} s), x forward and y left in metres in"
        " the ego frame at the end of the video; every distance is in m.",
        f"Answers per sample: {k}; the first is scored in the tables. Incomplete first answers: "
        f"{n_samples - n_complete} of {n_samples} (scored on the points they give; see points given).",
        "L2 conventions: " + "; ".join(f"{name} ({source})" for name, source in L2_CONVENTIONS.items()) + ".",
    ]
    parts = [f"<p>{html.escape(note)}</p>" for note in notes]
    for subset, title in (
        ("all", f"All samples (N = {n_samples})"),
        ("complete", f"Complete answers (N = {n_complete})"),
    ):
        parts.append(f"<h3>{html.escape(title)}</h3>")
        parts += [_html_table(header, rows, model_row="model") for header, rows in trajectory_tables(traj, subset)]
    if (min_text := min_over_answers_text(traj)) is not None:
        parts.append(f'<p class="min-over-answers">{html.escape(min_text)}</p>')
    parts.append(f"<p>{html.escape(BASELINES_TEXT.replace('`', ''))}</p>")
    if top_down_png is not None:
        caption = "Trajectories from above: past (grey), true (black), the model's answers (blue, the first thick)"
        parts.append(
            f'<figure><img alt="{html.escape(caption)}" src="{_data_uri(top_down_png, "image/png")}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    return "<h2>Trajectories</h2>" + "".join(parts)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], model_row: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cls = ' class="model"' if model_row is not None and row[0] == model_row else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _settings_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [(key, info.get(key)) for key in ("model", "adapter", "predictions_file", "dataset_dir", "split")]
    rows += [("samples scored / split size", f"{info.get('n_samples', '')} / {info.get('split_size', '')}")]
    rows += [(key, info.get(key)) for key in ("train_size", "dataset_fingerprint", "failure_policy")]
    rows += [("video settings source", info.get("video_settings_source")), ("generation", info.get("generation"))]
    rows += [(f"settings.{key}", value) for key, value in (info.get("settings") or {}).items()]
    return [(key, "" if value is None else str(value)) for key, value in rows]


def report_html(result: EvaluationResult, plots: dict[str, bytes], cards: Sequence[str]) -> str:
    """The page: title, settings, tables, plots (PNG bytes by file name) and the gallery's cards; for path answers
    the trajectory section (`trajectory_section`, with the `TOP_DOWN_PLOT` of `plots`) replaces the motion tables and
    plots."""
    info = {**result.info, "n_samples": result.n_samples}
    source = info.get("model") or info.get("predictions_file") or "answers"
    where = f"{source} on split {info.get('split')} of {info.get('dataset_dir')}: {result.n_samples} samples, "
    if result.motion:
        title = "Next-second motion prediction: evaluation"
        summary = (
            f"{where}{result.n_failures} parse failure(s) ({100 * result.parse_failure_rate:.1f} %, scored as the"
            " train mean). Speed in m/s, curvature in 1/m, paths in m."
        )
        intro = (
            "Best, median and worst parsed answers by velocity MAE, then parse failures. Each card: the input second,"
            " the true (black) and predicted (blue) speed and curvature over the next second, and both paths"
            " integrated from them, seen from above (forward up, the car at the red marker)."
        )
        body = _motion_tables(result, plots)
    else:
        title = "Trajectory prediction: evaluation"
        summary = f"{where}{result.n_failures} incomplete answer(s), scored on the points they give. Paths in m."
        intro = (
            "Best, median and worst complete answers by ADE, then incomplete ones. Each card: the input, and the past,"
            " true (black) and predicted (blue) paths seen from above (x forward, y left)."
        )
        body = trajectory_section(result, plots.get(TOP_DOWN_PLOT))
    settings = _html_table(("setting", "value"), _settings_rows(info))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body><header><h1>{html.escape(title)}</h1>
<p>{html.escape(summary)}</p>
</header><main>
<h2>Examples from the held-out segments</h2>
<p>{html.escape(intro)}</p>
<div class="gallery">{"".join(cards) or "<p>no samples</p>"}</div>
{body}
<h2>Run settings</h2><div class="settings">{settings}</div>
</main></body></html>
"""


def _motion_tables(result: EvaluationResult, plots: dict[str, bytes]) -> str:
    """The motion answers' model-vs-baselines tables over all and parsed samples, and the `PLOTS`."""
    from pipeline.stages.evaluate.scoring import MODEL_NAME

    n_parsed = result.n_samples - result.n_failures
    tables = []
    for subset, title in (("all", f"All samples (N = {result.n_samples})"), ("parsed", f"Parsed (N = {n_parsed})")):
        tables.append(f"<h3>{html.escape(title)}</h3>" + _html_table(*table(result, subset), model_row=MODEL_NAME))
    figures = "".join(
        f'<figure><img alt="{html.escape(caption)}" src="{_data_uri(plots[name], "image/png")}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for name, caption in PLOTS
        if name in plots
    )
    return f'<h2>Model vs baselines</h2>{"".join(tables)}\n<h2>Plots</h2><div class="plots">{figures}</div>'


def write_html_report(
    result: EvaluationResult,
    output_dir: Path,
    videos: Sequence[str | None],
    embed_videos: bool = False,
    n_failures: int = 3,
) -> Path:
    """Write report.html (and the gallery's mp4s into `clips/`, unless embedded) into `output_dir`.

    Args:
        result: the scored evaluation.
        output_dir: the report directory, holding the PNG plots `pipeline.stages.evaluate.report.write_report` wrote.
        videos: (N,) absolute path of each sample's segment mp4 (None or a missing file: the card says so).
        embed_videos: put the mp4s into the page as data URIs instead of copying them.
        n_failures: most parse failures shown in the gallery.
    """
    output_dir = Path(output_dir)
    errors = _ranking_errors(result)
    cards, kept = [], set()
    for label, i in gallery_indices(result, n_failures):
        tag, name = _video_tag(videos[i] if i < len(videos) else None, result.ids[i], output_dir, embed_videos)
        kept.add(name)
        cards.append(_card(result, label, i, tag, errors))
    if not embed_videos:
        replace_clips(output_dir / CLIPS_DIR, {name for name in kept if name})
    names = [name for name, _ in PLOTS] if result.motion else [TOP_DOWN_PLOT]
    plots = {name: (output_dir / name).read_bytes() for name in names if (output_dir / name).is_file()}
    path = output_dir / HTML_FILE
    write_text(path, report_html(result, plots, cards))
    return path


__all__ = ["CLIPS_DIR", "HTML_FILE", "gallery_indices", "report_html", "trajectory_section", "write_html_report"]
