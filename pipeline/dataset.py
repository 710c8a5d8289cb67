"""Stage 3: turn `segments.json` into a train/test Hugging Face dataset in the Qwen-VL conversation format.

Each row is one segment: ids and timing, the video path relative to the segments directory (recorded as
`video_root` in `dataset_meta.json` and made absolute by `load_split`), the conversation in `messages`
(system text, user video + prompt, assistant answer from `pipeline.answer.format_answer`) and the targets as
float32 sequences. Every segment of a clip lands on the same side of the split (overlapping windows share
frames), so the test set never holds frames seen in training.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.answer import DECIMALS, format_answer
from pipeline.atomic import atomic_dir
from pipeline.clip_split import clip_order, select_whole_clips, split_clips_official, split_clips_random
from pipeline.dataset_reader import META_FILE, SPLITS, clean_messages, features, quiet_datasets
from pipeline.errors import PipelineError
from pipeline.messages import (
    DEFAULT_SYSTEM_PROMPT,
    answer_format_description,
    build_messages,
    default_prompt,
    history_text,
)
from pipeline.progress import NullProgress, ProgressSink

logger = logging.getLogger(__name__)

# Rows written to {split}_examples.json.
N_EXAMPLES = 5

# Keys every segment record must carry (docs/ARCHITECTURE.md, `segments.json`), with their JSON types.
_INT_FIELDS = ("chunk", "segment_index", "start_us", "end_us")
_STR_FIELDS = ("id", "clip_id", "video")
TARGET_FIELDS = ("velocity", "curvature", "history_velocity", "history_curvature")


@dataclass
class DatasetConfig:
    """Settings of `pipeline build-dataset`."""

    # segments.json written by `pipeline segment` (its parent's parent is the segments directory).
    segments_path: Path = Path("qwen_video_segments/metadata/segments.json")
    # Where the dataset directory is written (train/, test/, dataset_meta.json, README.md, examples).
    output_dir: Path = Path("qwen_video_dataset")
    # Fraction of clips (not segments) held out as test with --split-by clip; strictly between 0 and 1.
    test_ratio: float = 0.1
    # Target samples per second; must equal the length of the segments' target lists.
    fps: int = 30
    # Keep at most about this many segments: whole clips in seeded order until the count is reached.
    max_samples: int | None = None
    # Replace an existing output directory (only once the new one is complete).
    overwrite_output: bool = False
    # Seed of the clip permutation (split and --max-samples selection).
    seed: int = 42
    # "clip": seeded split of clip ids; "official": the segments' `split` field (train -> train, val/test -> test).
    split_by: Literal["clip", "official"] = "clip"
    # Put the input second's (velocity, curvature) pairs in the user prompt.
    history: bool = False
    # Override of the system prompt text (None = DEFAULT_SYSTEM_PROMPT).
    system_prompt: str | None = None
    # Override of the user instruction text (None = default_prompt(fps)).
    prompt: str | None = None
    # Missing video files are an error instead of being skipped and counted.
    strict: bool = False

    def __post_init__(self) -> None:
        self.segments_path = Path(self.segments_path)
        self.output_dir = Path(self.output_dir)
        if not (isinstance(self.test_ratio, int | float) and 0.0 < float(self.test_ratio) < 1.0):
            raise PipelineError(f"--test-ratio must be strictly between 0 and 1, got {self.test_ratio}")
        if int(self.fps) != self.fps or self.fps < 1:
            raise PipelineError(f"--fps must be a positive whole number of targets per second, got {self.fps}")
        self.fps = int(self.fps)
        if self.max_samples is not None and self.max_samples < 1:
            raise PipelineError(f"--max-samples must be at least 1, got {self.max_samples}")
        if self.split_by not in ("clip", "official"):
            raise PipelineError(f"--split-by must be 'clip' or 'official', got {self.split_by!r}")
        if self.system_prompt is not None and not self.system_prompt.strip():
            raise PipelineError("--system-prompt must not be empty")
        if self.prompt is not None and not self.prompt.strip():
            raise PipelineError("--prompt must not be empty")

    @property
    def video_root(self) -> Path:
        """Absolute segments directory: `video` paths in segments.json are relative to it."""
        parent = self.segments_path.resolve().parent
        return parent.parent if parent.name == "metadata" else parent

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


@dataclass
class SegmentRecord:
    """The fields of one segments.json record that the dataset uses."""

    # "{clip_id}_{segment_index:02d}".
    id: str
    # UUID of the source clip.
    clip_id: str
    # Chunk id of the clip.
    chunk: int
    # 0-based index of the segment in its clip.
    segment_index: int
    # Segment window start (inclusive), microseconds on the clip timeline.
    start_us: int
    # Segment window end (exclusive), microseconds on the clip timeline.
    end_us: int
    # mp4 path relative to the segments directory.
    video: str
    # Official split of the clip (train/val/test), None if the record has none.
    split: str | None
    # (n,) next-second speed, m/s.
    velocity: list[float]
    # (n,) next-second curvature, 1/m (positive = left turn).
    curvature: list[float]
    # (n,) speed over the input second, m/s.
    history_velocity: list[float]
    # (n,) curvature over the input second, 1/m.
    history_curvature: list[float]


@dataclass
class BuildResult:
    """What `run` wrote."""

    # The dataset directory.
    output_dir: Path
    # Rows per split.
    counts: dict[str, int]
    # Clips per split.
    clip_counts: dict[str, int]
    # Segments skipped because their video file is missing.
    skipped_missing_video: int
    # Seconds spent building (without imports).
    seconds: float = 0.0
    # Extra notes for the CLI summary.
    notes: list[str] = field(default_factory=list)


def _field_error(path: Path, index: int, record: Any, message: str) -> PipelineError:
    rid = record.get("id") if isinstance(record, dict) else None
    where = f"record {index}" + (f" (id {rid!r})" if isinstance(rid, str) else "")
    return PipelineError(f"{path}: {where}: {message}")


def read_segments(path: Path, n: int) -> list[SegmentRecord]:
    """Read and check segments.json: every record has the fields the dataset needs, targets of length n.

    Raises:
        PipelineError: the file is missing, is not JSON, is not a list, or a record lacks a field or has a bad
            value (the message names the file, the record and the field).
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"segments file not found: {path} (run `pipeline segment` first or pass --segments-path)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PipelineError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(raw, list):
        raise PipelineError(f"{path}: expected a JSON list of segment records, got {type(raw).__name__}")
    if not raw:
        raise PipelineError(f"{path}: contains no segments")
    records = []
    for i, rec in enumerate(raw):
        if not isinstance(rec, dict):
            raise _field_error(path, i, rec, f"expected an object, got {type(rec).__name__}")
        for key in (*_STR_FIELDS, *_INT_FIELDS, *TARGET_FIELDS):
            if key not in rec:
                raise _field_error(path, i, rec, f"missing field {key!r}")
        for key in _STR_FIELDS:
            if not isinstance(rec[key], str) or not rec[key]:
                raise _field_error(path, i, rec, f"field {key!r} must be a non-empty string")
        for key in _INT_FIELDS:
            if isinstance(rec[key], bool) or not isinstance(rec[key], int):
                raise _field_error(path, i, rec, f"field {key!r} must be an integer, got {rec[key]!r}")
        for key in TARGET_FIELDS:
            values = rec[key]
            if not isinstance(values, list):
                raise _field_error(path, i, rec, f"field {key!r} must be a list of numbers")
            try:
                array = np.array(values)
            except (TypeError, ValueError):
                array = np.array([None])
            if array.ndim != 1 or array.dtype.kind not in "iuf":
                raise _field_error(path, i, rec, f"field {key!r} must be a list of numbers")
            if array.shape != (n,):
                raise _field_error(path, i, rec, f"field {key!r} has {len(values)} values, expected {n} (--fps {n})")
            if not np.isfinite(array).all():
                raise _field_error(path, i, rec, f"field {key!r} holds a non-finite value")
        split = rec.get("split")
        if split is not None and not isinstance(split, str):
            raise _field_error(path, i, rec, f"field 'split' must be a string, got {split!r}")
        records.append(
            SegmentRecord(
                id=rec["id"],
                clip_id=rec["clip_id"],
                chunk=rec["chunk"],
                segment_index=rec["segment_index"],
                start_us=rec["start_us"],
                end_us=rec["end_us"],
                video=rec["video"],
                split=split,
                velocity=rec["velocity"],
                curvature=rec["curvature"],
                history_velocity=rec["history_velocity"],
                history_curvature=rec["history_curvature"],
            )
        )
    duplicates = [k for k, c in Counter(r.id for r in records).items() if c > 1]
    if duplicates:
        raise PipelineError(f"{path}: duplicate segment id {duplicates[0]!r}")
    return records


def build_row(rec: SegmentRecord, system_prompt: str, prompt: str, with_history: bool) -> dict[str, Any]:
    """One dataset row (the columns of `features`) from one segment record."""
    history = (
        history_text(np.asarray(rec.history_velocity), np.asarray(rec.history_curvature)) if with_history else None
    )
    answer = format_answer(np.asarray(rec.velocity), np.asarray(rec.curvature))
    return {
        "id": rec.id,
        "clip_id": rec.clip_id,
        "chunk": rec.chunk,
        "segment_index": rec.segment_index,
        "start_us": rec.start_us,
        "end_us": rec.end_us,
        "video": rec.video,
        "messages": build_messages(rec.video, answer, system_prompt, prompt, history),
        "velocity": rec.velocity,
        "curvature": rec.curvature,
        "history_velocity": rec.history_velocity,
        "history_curvature": rec.history_curvature,
    }


def _dataset_card(meta: dict[str, Any], example_answer: str) -> str:
    n = meta["target_hz"]
    counts, clips = meta["counts"], meta["clip_counts"]
    split_text = (
        f"by clip: a seeded permutation (seed {meta['seed']}) of the sorted clip ids, "
        f"{meta['test_ratio']:g} of the clips held out as test"
        if meta["split_by"] == "clip"
        else "official: the clip's `split` in clip_index.parquet (train -> train, val and test -> test)"
    )
    first_lines = "\n".join(example_answer.splitlines()[:3])
    history_note = " after the input second's measured motion" if meta["history"] else ""
    return f"""# PhysicalAI-AV next-second motion dataset (Qwen-VL conversations)

Built by `pipeline build-dataset` from `{meta["segments_path"]}`.

| split | rows (segments) | clips |
|---|---|---|
| train | {counts["train"]} | {clips["train"]} |
| test | {counts["test"]} | {clips["test"]} |

Segments skipped because their video is missing: {meta["skipped_missing_video"]}.

**Split**: {split_text}. Every segment of a clip is on the same side (overlapping windows share frames).

**Rows**: `id`, `clip_id`, `chunk`, `segment_index`, `start_us`/`end_us` (segment window, microseconds),
`video` (mp4 path relative to `video_root` in `dataset_meta.json`; `pipeline.dataset_reader.load_split` makes
it absolute), `messages` (system text; user = the video then the prompt{history_note}; assistant = the
answer), and float32 sequences of length {n}: `velocity` (m/s), `curvature` (1/m, positive = left turn)
for the next second, `history_velocity`, `history_curvature` for the input second.

**Answer format**: {n} lines, line k (k = 1..{n}) = the motion k/{n} s after the end of the video, written
`velocity,curvature` with velocity in m/s and curvature in **1/km** (1000 x the 1/m columns), both with
{DECIMALS} decimals (rounding error <= 0.005 m/s and <= 5e-6 1/m), never `-0.00`. First lines of a train answer:

```
{first_lines}
```

Load a split with absolute video paths:

```python
from pipeline.dataset_reader import load_split
train = load_split("{meta["output_dir"]}", "train")
```
"""


def _check_output(config: DatasetConfig) -> None:
    out = config.output_dir
    if out.exists() and not config.overwrite_output:
        raise PipelineError(f"output directory exists: {out} (pass --overwrite-output to replace it)")
    if out.exists() and not out.is_dir():
        raise PipelineError(f"--output-dir is a file, not a directory: {out}")
    if out.resolve() == config.video_root or config.video_root.is_relative_to(out.resolve()):
        raise PipelineError(f"--output-dir {out} would replace the segments directory it reads")


def run(config: DatasetConfig, progress: ProgressSink | None = None) -> BuildResult:
    """Build the dataset directory: output_dir/{train,test} (save_to_disk), dataset_meta.json, examples, README.md.

    Raises:
        PipelineError: bad segments.json, missing video with `strict`, existing output without
            `overwrite_output`, or nothing left to write.
    """
    import time

    progress = progress or NullProgress()
    t0 = time.perf_counter()
    _check_output(config)
    n = config.fps
    records = read_segments(config.segments_path, n)
    root = config.video_root
    logger.info("read %d segments from %s (video root %s)", len(records), config.segments_path, root)

    # Missing videos: skip and count, or fail with --strict.
    kept, missing = [], []
    progress.start("checking videos", len(records))
    for rec in records:
        if (root / rec.video).is_file():
            kept.append(rec)
        else:
            if config.strict:
                progress.finish()
                raise PipelineError(f"video of segment {rec.id!r} not found: {root / rec.video} (--strict)")
            missing.append(rec)
        progress.advance()
    progress.finish()
    if missing:
        logger.warning("skipped %d segment(s) whose video is missing, e.g. %s", len(missing), root / missing[0].video)
    if not kept:
        raise PipelineError(f"{config.segments_path}: none of the {len(records)} segment videos exist under {root}")

    by_clip: dict[str, list[SegmentRecord]] = defaultdict(list)
    for rec in kept:
        by_clip[rec.clip_id].append(rec)
    order = clip_order(list(by_clip), config.seed)
    notes: list[str] = []
    if config.max_samples is not None:
        order = select_whole_clips({c: len(v) for c, v in by_clip.items()}, order, config.max_samples)
        notes.append(
            f"--max-samples {config.max_samples}: kept {sum(len(by_clip[c]) for c in order)} segments "
            f"from {len(order)} whole clip(s)"
        )
        logger.info(notes[-1])
    chosen = [rec for clip in order for rec in by_clip[clip]]
    if config.split_by == "clip":
        sides = split_clips_random(order, config.test_ratio)
    else:
        sides = split_clips_official(chosen, config.segments_path)
    if len(order) < 2:
        notes.append("only one clip: the test split is empty")
        logger.warning(notes[-1])

    system_prompt = config.system_prompt or DEFAULT_SYSTEM_PROMPT
    prompt = config.prompt or default_prompt(n)
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    progress.start("building rows", len(chosen))
    for rec in sorted(chosen, key=lambda r: (r.clip_id, r.segment_index)):
        rows[sides[rec.clip_id]].append(build_row(rec, system_prompt, prompt, config.history))
        progress.advance()
    progress.finish()
    counts = {s: len(rows[s]) for s in SPLITS}
    clip_counts = {s: len({r["clip_id"] for r in rows[s]}) for s in SPLITS}
    logger.info(
        "split by %s: train %d segments / %d clips, test %d segments / %d clips",
        config.split_by,
        counts["train"],
        clip_counts["train"],
        counts["test"],
        clip_counts["test"],
    )

    import datasets

    feats = features(n)
    meta = {
        "video_root": str(root),
        "segments_path": str(config.segments_path.resolve()),
        "output_dir": str(config.output_dir.resolve()),
        "target_hz": n,
        "split_by": config.split_by,
        "seed": config.seed,
        "test_ratio": config.test_ratio,
        "history": config.history,
        "counts": counts,
        "clip_counts": clip_counts,
        "skipped_missing_video": len(missing),
        "answer_format": answer_format_description(n),
        "system_prompt": system_prompt,
        "prompt": prompt,
        "config": config.to_json(),
    }
    with quiet_datasets(), atomic_dir(config.output_dir, overwrite=config.overwrite_output) as tmp:
        progress.start("saving splits", len(SPLITS))
        for split in SPLITS:
            ds = datasets.Dataset.from_list(rows[split], features=feats, split=datasets.Split(split))
            ds.save_to_disk(str(tmp / split))
            examples = [dict(r, messages=clean_messages(r["messages"])) for r in rows[split][:N_EXAMPLES]]
            (tmp / f"{split}_examples.json").write_text(json.dumps(examples, indent=2) + "\n", encoding="utf-8")
            progress.advance()
        progress.finish()
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        any_rows = rows["train"] or rows["test"]
        answer = any_rows[0]["messages"][-1]["content"][0]["text"]
        (tmp / "README.md").write_text(_dataset_card(meta, answer), encoding="utf-8")
    seconds = time.perf_counter() - t0
    logger.info("wrote %s in %.1f s", config.output_dir, seconds)
    return BuildResult(config.output_dir, counts, clip_counts, len(missing), seconds, notes)


__all__ = ["BuildResult", "DatasetConfig", "SegmentRecord", "build_row", "read_segments", "run"]
