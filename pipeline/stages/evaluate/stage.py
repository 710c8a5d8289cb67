"""Stage 5: score a model (or a predictions file) on held-out segments against baselines, then write the report.

Answers come either from batched greedy generation with the training stage's loader and generation loop
(`pipeline.model.modeling`, `pipeline.model.inference`) or from a JSONL file of `{"id": ..., "text": ...}` lines
(any server's outputs, no model loaded). Each answer is read with `pipeline.contracts.answer.parse_answer`; an answer
with fewer than n readable, finite pairs is a parse failure and is scored as the train-mean prediction (the per-step
mean of the train split's targets). Metrics are reported over all samples and over the parsed ones, for the
model and every baseline of `pipeline.stages.evaluate.baselines` on the same samples.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.errors import PipelineError, first_line
from pipeline.core.progress import NullProgress, ProgressSink
from pipeline.stages.evaluate import baselines as baselines_mod
from pipeline.stages.evaluate.config import EvaluateConfig
from pipeline.stages.evaluate.scoring import FAILURE_POLICY, MODEL_NAME, EvaluationResult, score_answers

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

log = logging.getLogger(__name__)

_SEQUENCES = ("history_velocity", "history_curvature", "velocity", "curvature")
_TARGET_COLUMNS = ("id", "clip_id", "segment_index", *_SEQUENCES)


def read_predictions(path: Path, known_ids: set[str] | None = None) -> dict[str, str]:
    """Read a JSONL file of `{"id": str, "text": str}` lines (blank lines skipped).

    Raises:
        PipelineError: unreadable line, missing/non-string field, duplicate id, or (with `known_ids`) ids not in
        the split; the message names the file and line or id.
    """
    out: dict[str, str] = {}
    unknown: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise PipelineError(f"--predictions {path}:{line_no}: not JSON ({err.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise PipelineError(f"--predictions {path}:{line_no}: expected an object with a string 'id'")
            if not isinstance(record.get("text"), str):
                raise PipelineError(f"--predictions {path}:{line_no}: expected a string 'text'")
            sample_id = record["id"]
            if sample_id in out:
                raise PipelineError(f"--predictions {path}:{line_no}: duplicate id {sample_id!r}")
            if known_ids is not None and sample_id not in known_ids:
                unknown.append(sample_id)
            out[sample_id] = record["text"]
    if unknown:
        raise PipelineError(f"--predictions {path}: {len(unknown)} id(s) not in the split, e.g. {unknown[0]!r}")
    if not out:
        raise PipelineError(f"--predictions {path}: no predictions in the file")
    return out


def _load(dataset_dir: Path, split: str, video_root: Path | None = None) -> datasets.Dataset:
    from pipeline.contracts.dataset_reader import load_split

    if not (dataset_dir / split).is_dir():
        found = sorted(p.name for p in dataset_dir.iterdir() if (p / "dataset_info.json").is_file())
        raise PipelineError(f"--dataset {dataset_dir}: no split {split!r} (found: {', '.join(found) or 'none'})")
    return load_split(dataset_dir, split, video_root=video_root)


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


def _train_moments(dataset_dir: Path) -> baselines_mod.TrainMoments:
    """Moments of the train split's history and targets (train mean, history ridge), streamed a batch at a time."""
    from pipeline.contracts.dataset_reader import split_batches

    moments = baselines_mod.TrainMoments()
    for batch in split_batches(dataset_dir, "train", list(_SEQUENCES)):
        moments.add(*(_sequence(batch, key) for key in _SEQUENCES))
    return moments


def _fingerprint(ids: list[str], split: str, dataset_meta: dict[str, Any]) -> str:
    """sha256 over the scored ids (in order), the split name and dataset_meta.json."""
    payload = json.dumps({"split": split, "ids": ids, "dataset_meta": dataset_meta}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def resolve_device(device: str) -> str:
    """Resolve `device`: "auto" is "cuda" when a CUDA GPU is visible, else "cpu"; an explicit CUDA device must exist.

    Raises:
        PipelineError: CUDA was asked for but is not available.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PipelineError(f"--device {device}: no CUDA GPU is available (use --device cpu)")
    return device


def load_checked(model_id: str, adapter: Path | None, dtype: str | None = None) -> tuple[Any, Any]:
    """`load_model_and_processor` for inference, with an adapter that does not fit the model made a `PipelineError`.

    PEFT raises on shape mismatches but only warns when adapter weights have no place in the model (another
    architecture or depth); both are refused here.

    Raises:
        PipelineError: the model, processor or adapter cannot be loaded, or the adapter does not match (one line).
    """
    from pipeline.model.modeling import load_model_and_processor

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model, processor = load_model_and_processor(model_id, adapter=adapter, dtype=dtype)
        except PipelineError:
            raise
        except (ValueError, RuntimeError, KeyError, OSError) as err:
            if adapter is None:
                raise PipelineError(f"--model {model_id}: cannot load ({first_line(err)})") from None
            raise PipelineError(f"--adapter {adapter} does not match --model {model_id} ({first_line(err)})") from None
    for warning in caught:
        message = str(warning.message)
        if adapter is not None and "missing adapter keys" in message:
            raise PipelineError(f"--adapter {adapter} does not match --model {model_id} (adapter weights missing)")
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return model, processor


def _generate(
    config: EvaluateConfig, ds: datasets.Dataset, progress: ProgressSink
) -> tuple[list[str], dict[str, Any]]:
    """Greedy answers for every row of `ds` with the training stage's loader and generation loop, and the
    generation settings used (`pipeline.model.inference.generation_record`).

    A row whose video cannot be read gets "" (logged by the generator) and so counts as a parse failure.
    """
    device = resolve_device(config.device)
    model, processor = load_checked(config.model, config.adapter, dtype=config.dtype)
    model.to(device)
    log.info("generating on %s", device)
    log.info("video settings %s, read from %s", asdict(config.video_settings), config.video_settings_source)
    from pipeline.model.inference import generate_answers, generation_record, greedy_generation_config

    generation = greedy_generation_config(processor, config.generation.max_new_tokens, model.generation_config)
    texts = generate_answers(
        model,
        processor,
        ds,
        video_settings=config.video_settings,
        batch_size=config.batch_size,
        progress=progress,
        generation_config=generation,
    )
    return texts, generation_record(generation)


def run(config: EvaluateConfig, progress: ProgressSink | None = None) -> EvaluationResult:
    """Score the split, write the report into `config.output_dir` and return the result.

    Raises:
        PipelineError: missing split, bad predictions file (unknown/duplicate ids), a model or adapter that cannot
        be loaded.
    """
    from pipeline.core.atomic import write_text
    from pipeline.stages.evaluate.report import write_report
    from pipeline.stages.evaluate.report_html import write_html_report

    progress = progress or NullProgress()
    if config.server is not None:
        from pipeline.stages.evaluate.serving_client import check_server

        served_model = check_server(config.server)  # a server that is down stops here, before any work
    ds = _load(config.dataset_dir, config.split, config.video_root)
    _load(config.dataset_dir, "train")  # a missing or unreadable train split stops here, with the splits found
    from pipeline.contracts.dataset_reader import read_meta

    dataset_meta = read_meta(config.dataset_dir)

    moments = _train_moments(config.dataset_dir)
    if not moments.count:
        raise PipelineError(f"--dataset {config.dataset_dir}: the train split is empty (needed for the train mean)")
    mean_v, mean_k = moments.mean_profile()
    history_model = moments.fit_ridge()

    split_ids = list(ds["id"])
    without_prediction = 0
    generation = None
    server_info = None
    if config.predictions is not None:
        answers = read_predictions(config.predictions, known_ids=set(split_ids))
        keep = [i for i, sample_id in enumerate(split_ids) if sample_id in answers]
        without_prediction = len(split_ids) - len(keep)
        if without_prediction:
            log.warning(
                "%s covers %d of the %d samples of split %r; scoring those",
                config.predictions,
                len(keep),
                len(split_ids),
                config.split,
            )
        if config.max_samples is not None:
            keep = keep[: config.max_samples]
        ds = ds.select(keep)
        texts = [answers[sample_id] for sample_id in ds["id"]]
    elif config.server is not None:
        from pipeline.stages.evaluate.serving_client import answer_max_tokens, server_answers, whole_clip_rows

        if config.max_samples is not None:
            ds = ds.select(whole_clip_rows([str(c) for c in ds["clip_id"]], config.max_samples))
        max_tokens = min(config.generation.max_new_tokens, answer_max_tokens(len(mean_v)))
        texts, server_info = server_answers(
            config.server,
            ds,
            config.run_dir,
            config.video_settings,
            config.output_dir,
            max_tokens,
            served_model,
            progress,
        )
    else:
        if config.max_samples is not None:
            ds = ds.select(range(min(config.max_samples, len(ds))))
        texts, generation = _generate(config, ds, progress)

    if len(ds) == 0:
        raise PipelineError(f"--dataset {config.dataset_dir}: split {config.split!r} has no samples to score")
    targets = _columns(ds)
    if targets["velocity"].shape[1] != len(mean_v):
        raise PipelineError(
            f"--dataset {config.dataset_dir}: split {config.split!r} has {targets['velocity'].shape[1]} steps, "
            f"train has {len(mean_v)}"
        )
    result = score_answers(
        texts,
        targets,
        mean_v,
        mean_k,
        window_s=config.window_s,
        horizon_s=config.horizon_s,
        history_model=history_model,
    )
    result.info = {
        "model": config.model,
        "adapter": str(config.adapter) if config.adapter else None,
        "predictions_file": str(config.predictions) if config.predictions else None,
        "dataset_dir": str(config.dataset_dir),
        "split": config.split,
        "split_size": len(split_ids),
        "train_size": moments.count,
        "samples_without_prediction": without_prediction,
        "server": server_info,
        "video_settings_source": config.video_settings_source,
        "generation": generation,
        "dataset_fingerprint": _fingerprint(result.ids, config.split, dataset_meta),
        "dataset_meta": dataset_meta,
        "failure_policy": FAILURE_POLICY,
        "settings": config.to_json(),
    }
    log.info(
        "scored %d samples of %r: %d parse failure(s); velocity MAE %.3f m/s, ADE %.3f m",
        result.n_samples,
        config.split,
        result.n_failures,
        result.scores["all"][MODEL_NAME].velocity_mae,
        result.scores["all"][MODEL_NAME].ade,
    )
    write_report(result, config.output_dir, n_examples=config.n_examples)
    write_html_report(result, config.output_dir, videos=list(ds["video"]), embed_videos=config.embed_videos)
    if config.save_predictions:
        lines = [json.dumps({"id": i, "text": t}, ensure_ascii=False) for i, t in zip(result.ids, texts, strict=True)]
        write_text(config.output_dir / "predictions.jsonl", "\n".join(lines) + "\n")
    return result


__all__ = [
    "EvaluateConfig",
    "load_checked",
    "read_predictions",
    "resolve_device",
    "run",
]
