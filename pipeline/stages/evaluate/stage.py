"""Stage 5: score a model (or a predictions file, or a server) on held-out segments against baselines, then write the
report.

Answers come from one source (`answers.AnswerSource`): batched greedy generation in-process
(`answers_from_model`), a JSONL file of `{"id": ..., "text": ...}` lines (`answers_from_file`: any server's outputs,
no model loaded) or an OpenAI-compatible server (`answers_from_server`). Each answer is read with
`pipeline.contracts.answer.parse_answer`; an answer with fewer than n readable, finite pairs is a parse failure and is
scored as the train-mean prediction (the per-step mean of the train split's targets). Metrics are reported over all
samples and over the parsed ones, for the model and every baseline of `pipeline.stages.evaluate.baselines` on the
same samples.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.core.progress import NullProgress, ProgressSink
from pipeline.stages.evaluate import baselines as baselines_mod
from pipeline.stages.evaluate.answers import Answers, AnswerSource
from pipeline.stages.evaluate.config import EvaluateConfig
from pipeline.stages.evaluate.resolved_run import ResolvedRun, resolve_run
from pipeline.stages.evaluate.scoring import (
    FAILURE_POLICY,
    MODEL_NAME,
    PATH_FAILURE_POLICY,
    EvaluationResult,
    path_answer_result,
    score_answers,
)

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

    from pipeline.stages.evaluate.clip_selection import ClipSelection

log = logging.getLogger(__name__)

_SEQUENCES = ("history_velocity", "history_curvature", "velocity", "curvature")
_TARGET_COLUMNS = ("id", "clip_id", "segment_index", *_SEQUENCES)


def _load(dataset: Path, split: str, video_root: Path | None = None) -> datasets.Dataset:
    from pipeline.contracts.dataset_reader import load_split

    if not (dataset / split).is_dir():
        found = sorted(p.name for p in dataset.iterdir() if (p / "dataset_info.json").is_file())
        raise PipelineError(f"--dataset {dataset}: no split {split!r} (found: {', '.join(found) or 'none'})")
    return load_split(dataset, split, video_root=video_root)


def _columns(ds: datasets.Dataset) -> dict[str, Any]:
    """Target columns of a split as lists (ids) and (N, n) float64 arrays (sequences)."""
    missing = [c for c in _TARGET_COLUMNS if c not in ds.column_names]
    if missing:
        raise PipelineError(f"dataset split has no column(s) {', '.join(missing)}")
    # Columnar: the Arrow columns straight to numpy, no Python object per row for the (N, n) sequences.
    table = ds.select_columns(list(_TARGET_COLUMNS)).with_format("arrow")[:]
    out: dict[str, Any] = {key: table.column(key).to_pylist() for key in ("id", "clip_id", "segment_index")}
    for key in _SEQUENCES:
        out[key] = _sequence(table, key)
    return out


def _sequence(table: pa.Table | pa.RecordBatch, key: str) -> np.ndarray:
    """(rows, n) float64 values of a fixed-length sequence column."""
    import pyarrow.compute as pc

    values = pc.list_flatten(table.column(key)).to_numpy(zero_copy_only=False)
    width = getattr(table.schema.field(key).type, "list_size", -1) if len(table) else 0
    return values.astype(np.float64).reshape(len(table), width)


def _train_moments(dataset: Path) -> baselines_mod.TrainMoments:
    """Moments of the train split's history and targets (train mean, history ridge), streamed a batch at a time."""
    from pipeline.contracts.dataset_reader import split_batches

    moments = baselines_mod.TrainMoments()
    for batch in split_batches(dataset, "train", list(_SEQUENCES)):
        moments.add(*(_sequence(batch, key) for key in _SEQUENCES))
    return moments


def _fingerprint(ids: list[str], split: str, dataset_meta: dict[str, Any]) -> str:
    """sha256 over the scored ids (in order), the split name and dataset_meta.json."""
    payload = json.dumps({"split": split, "ids": ids, "dataset_meta": dataset_meta}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def answer_source(config: EvaluateConfig, run: ResolvedRun, split_ids: frozenset[str] | None = None) -> AnswerSource:
    """The source `config` names (a server is asked which model it serves, before any work); `split_ids`: every id
    of the split, which a predictions file may answer when only some of its clips are scored (`--clips`).

    Raises:
        PipelineError: the server cannot be reached or serves no model it can name (one line).
    """
    if config.predictions is not None:
        from pipeline.stages.evaluate.answers_from_file import PredictionsFile

        return PredictionsFile(config.predictions, config.split, config.max_samples, split_ids)
    if config.server is not None:
        from pipeline.stages.evaluate.answers_from_server import Server

        return Server.connect(config, run)
    from pipeline.stages.evaluate.answers_from_model import InProcessModel

    assert run.video_settings is not None
    return InProcessModel(config, run.video_settings, run.video_settings_source)


def _check_not_empty(config: EvaluateConfig, rows: datasets.Dataset) -> None:
    if len(rows) == 0:
        raise PipelineError(f"--dataset {config.dataset}: split {config.split!r} has no samples to score")


def _targets(config: EvaluateConfig, rows: datasets.Dataset, n_steps: int) -> dict[str, Any]:
    """The scored rows' target columns (`_columns`), checked against the train split's `n_steps`."""
    _check_not_empty(config, rows)
    targets = _columns(rows)
    if targets["velocity"].shape[1] != n_steps:
        raise PipelineError(
            f"--dataset {config.dataset}: split {config.split!r} has {targets['velocity'].shape[1]} steps, "
            f"train has {n_steps}"
        )
    return targets


def _scored_rows(
    config: EvaluateConfig, split: datasets.Dataset, dataset_meta: dict[str, Any]
) -> tuple[datasets.Dataset, ClipSelection | None]:
    """The split's rows to score: all of them, or those of the `--clips` list (with what it found)."""
    if config.clips is None:
        return split, None
    from pipeline.stages.evaluate.clip_selection import select_clips

    return select_clips(config.clips, config.split, split, config.dataset, dataset_meta)


def run(config: EvaluateConfig, progress: ProgressSink | None = None) -> EvaluationResult:
    """Score the split, write the report into `config.output_dir` and return the result.

    Raises:
        PipelineError: missing split, bad predictions file (unknown/duplicate ids), a model or adapter that cannot
        be loaded, a server that cannot be reached, a training run's settings that cannot be read.
    """
    from pipeline.contracts.dataset_reader import read_meta
    from pipeline.stages.evaluate.output_dir import check_output_dir

    progress = progress or NullProgress()
    check_output_dir(config)
    resolved = resolve_run(config)
    split = _load(config.dataset, config.split, config.video_root)
    # With --clips, a predictions file may also answer the split's other clips.
    source = answer_source(config, resolved, frozenset(split["id"]) if config.clips is not None else None)
    _load(config.dataset, "train")  # a missing or unreadable train split stops here, with the splits found
    dataset_meta = read_meta(config.dataset)
    scored, clips = _scored_rows(config, split, dataset_meta)
    if path_answers(dataset_meta):
        lines = answer_lines(dataset_meta, n_steps=0)
        _warn_if_too_short(config, lines)
        answers = source.answers(scored, lines, progress)
        trajectory, train_size = _trajectory_scores(config, dataset_meta, answers)
        result = path_answer_result(answers.rows, answers.texts, trajectory)
    else:
        result, answers, train_size = _motion_scores(config, dataset_meta, source, scored, progress)
    result.info = {
        "model": config.model,
        "adapter": str(config.adapter) if config.adapter else None,
        "predictions_file": str(config.predictions) if config.predictions else None,
        "dataset_dir": str(config.dataset),
        "split": config.split,
        "split_size": len(split),
        "train_size": train_size,
        "samples_without_prediction": answers.without_prediction,
        "clips": clips.to_json() if clips is not None else None,
        "server": answers.server,
        "video_settings_source": resolved.video_settings_source,
        "generation": answers.generation,
        "dataset_fingerprint": _fingerprint(result.ids, config.split, dataset_meta),
        "dataset_meta": dataset_meta,
        "failure_policy": FAILURE_POLICY if result.motion else PATH_FAILURE_POLICY,
        "settings": config.to_json() | resolved.to_json(),
    }
    _log_scores(config, result)
    _write_report(config, result, answers)
    if answers.server is not None:
        from pipeline.stages.evaluate.served_errors import failed_share_verdict

        verdict = failed_share_verdict(answers.server)
        if verdict is not None:  # the report is written, and says so
            raise PipelineError(f"{verdict}: see {config.output_dir / 'metrics.json'}")
    return result


def path_answers(dataset_meta: dict[str, Any]) -> bool:
    """The answers are paths (`x,y` lines): dataset_meta.json "targets" asks for trajectories. With "both" too the
    answer is the path alone (build-dataset writes the trajectory answer), so the motion tables are left out."""
    from pipeline.stages.evaluate.trajectory_scoring import TRAJECTORY_TARGETS

    settings = dataset_meta.get("targets")
    return isinstance(settings, dict) and settings.get("targets", "motion") in TRAJECTORY_TARGETS


def _motion_scores(
    config: EvaluateConfig,
    dataset_meta: dict[str, Any],
    source: AnswerSource,
    scored: datasets.Dataset,
    progress: ProgressSink,
) -> tuple[EvaluationResult, Answers, int]:
    """(speed, curvature) answers scored against the targets and the motion baselines; with the train split's size.

    Raises:
        PipelineError: an empty train split, or a split whose steps differ from train's.
    """
    moments = _train_moments(config.dataset)
    if not moments.count:
        raise PipelineError(f"--dataset {config.dataset}: the train split is empty (needed for the train mean)")
    mean_v, mean_k = moments.mean_profile()
    lines = answer_lines(dataset_meta, len(mean_v))
    _warn_if_too_short(config, lines)
    answers = source.answers(scored, lines, progress)
    targets = _targets(config, answers.rows, len(mean_v))
    result = score_answers(
        answers.texts,
        targets,
        mean_v,
        mean_k,
        window_s=config.window_s,
        horizon_s=config.horizon_s,
        history_model=moments.fit_ridge(),
    )
    return result, answers, moments.count


def _log_scores(config: EvaluateConfig, result: EvaluationResult) -> None:
    if result.trajectory is not None:
        log.info(
            "scored %d samples of %r: %d incomplete answer(s); ADE %.3f m",
            result.n_samples,
            config.split,
            result.n_failures,
            result.trajectory.scores["all"][MODEL_NAME]["ade_m"]["all"],
        )
        return
    log.info(
        "scored %d samples of %r: %d parse failure(s); velocity MAE %.3f m/s, ADE %.3f m",
        result.n_samples,
        config.split,
        result.n_failures,
        result.scores["all"][MODEL_NAME].velocity_mae,
        result.scores["all"][MODEL_NAME].ade,
    )


def answer_lines(dataset_meta: dict[str, Any], n_steps: int) -> int:
    """Lines of a full answer (a server's `max_tokens` is sized on it): the n motion steps, or with path answers
    (`path_answers`) the trajectory's points: dataset_meta.json `n_targets`, or horizon_s * target_hz of a build
    written before that key."""
    if not path_answers(dataset_meta):
        return n_steps
    settings = dataset_meta["targets"]
    points = dataset_meta.get("n_targets")
    if isinstance(points, int):
        return points
    return round(float(settings.get("horizon_s", 1.0)) * float(settings.get("target_hz", 30.0)))


def _warn_if_too_short(config: EvaluateConfig, lines: int) -> None:
    """Log a warning when in-process generation may stop before an answer of `lines` lines ends."""
    from pipeline.stages.evaluate.serving_client import answer_max_tokens

    if config.model is not None and config.generation.max_new_tokens < answer_max_tokens(lines):
        log.warning(
            "--max-new-tokens %d may cut answers of %d lines short (about %d tokens)",
            config.generation.max_new_tokens,
            lines,
            answer_max_tokens(lines),
        )


def _trajectory_scores(config: EvaluateConfig, dataset_meta: dict[str, Any], answers: Answers) -> tuple[Any, int]:
    """The path answers scored (`trajectory_scoring.TrajectoryResult`) and the train split's size.

    Raises:
        PipelineError: the trajectory columns are missing or malformed, the history has fewer than 2 rows, or the
        train split is empty.
    """
    from pipeline.contracts.dataset_reader import split_num_rows
    from pipeline.stages.evaluate.trajectory_scoring import (
        score_trajectory_answers,
        train_trajectory_ridge,
        xyh_column,
    )

    _check_not_empty(config, answers.rows)
    history = xyh_column(answers.rows, "history_xyh")
    if history.shape[1] < 2:
        raise PipelineError(f"--dataset {config.dataset}: history_xyh has {history.shape[1]} row(s), need >= 2")
    ridge = train_trajectory_ridge(config.dataset)
    texts = answers.samples or [[text] for text in answers.texts]
    ids = [str(x) for x in answers.rows["id"]]
    settings = dataset_meta["targets"]
    scores = score_trajectory_answers(ids, texts, xyh_column(answers.rows, "future_xyh"), history, settings, ridge)
    return scores, split_num_rows(config.dataset, "train")


def _write_report(config: EvaluateConfig, result: EvaluationResult, answers: Answers) -> None:
    """report.md, metrics.json, the plots, report.html and (with `save_predictions`) predictions.jsonl."""
    from pipeline.core.atomic import write_text
    from pipeline.stages.evaluate.report import write_report
    from pipeline.stages.evaluate.report_html import write_html_report

    write_report(result, config.output_dir, n_examples=config.n_examples)
    write_html_report(result, config.output_dir, videos=list(answers.rows["video"]), embed_videos=config.embed_videos)
    if config.save_predictions:
        pairs = zip(result.ids, result.texts, strict=True)
        lines = [json.dumps({"id": i, "text": t}, ensure_ascii=False) for i, t in pairs]
        write_text(config.output_dir / "predictions.jsonl", "\n".join(lines) + "\n")


__all__ = ["EvaluateConfig", "answer_lines", "answer_source", "path_answers", "run"]
