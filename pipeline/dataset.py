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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pipeline.answer import CURVATURE_SCALE, DECIMALS, format_answer
from pipeline.atomic import atomic_dir
from pipeline.errors import PipelineError
from pipeline.progress import NullProgress, ProgressSink

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
# Official split of clip_index.parquet -> side of our split: only `train` clips are trained on; `val` and `test`
# clips both go to our test side.
OFFICIAL_SPLIT_MAP = {"train": "train", "val": "test", "test": "test"}
# Rows written to {split}_examples.json.
N_EXAMPLES = 5
META_FILE = "dataset_meta.json"

# Keys every segment record must carry (docs/ARCHITECTURE.md, `segments.json`), with their JSON types.
_INT_FIELDS = ("chunk", "segment_index", "start_us", "end_us")
_STR_FIELDS = ("id", "clip_id", "video")
TARGET_FIELDS = ("velocity", "curvature", "history_velocity", "history_curvature")

DEFAULT_SYSTEM_PROMPT = (
    "You are the motion planner of a self-driving car. You watch the front camera and predict how the car "
    "itself (the ego vehicle) will move next."
)


def default_prompt(n: int) -> str:
    """The default user instruction for n targets per second: the task, the answer format and its units."""
    return (
        f"The video shows the last second seen by the car's front camera. Predict the car's motion over the "
        f"next second at {n} evenly spaced times (1/{n} s apart; the last one is 1 s after the end of "
        f"the video). Answer with exactly {n} lines, one per time step in order, each written as "
        f"`velocity,curvature`: velocity is the speed in m/s and curvature is the path curvature in 1/km "
        f"(positive = turning left, negative = turning right, 0 = straight), both with {DECIMALS} decimals, "
        f"for example `12.34,-1.25`. Write nothing else."
    )


def history_text(history_velocity: np.ndarray, history_curvature: np.ndarray) -> str:
    """The input second's (velocity, curvature) pairs as a prompt block, in the answer format."""
    n = len(history_velocity)
    return (
        f"Measured motion during the video ({n} lines, oldest first, the last one is now; same format and units "
        f"as the answer):\n{format_answer(history_velocity, history_curvature)}"
    )


@dataclass
class DatasetConfig:
    """Settings of `pipeline build-dataset`."""

    # segments.json written by `pipeline segment` (its parent's parent is the segments directory).
    segments_path: Path = Path("qwen_video_segments/metadata/segments.json")
    # Where the dataset directory is written (train/, test/, dataset_meta.json, README.md, examples).
    output_dir: Path = Path("qwen_video_dataset")
    # Accepted for compatibility with the original script; targets come from segments.json either way.
    ego_motion_dir: Path | None = None
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
        if self.ego_motion_dir is not None:
            self.ego_motion_dir = Path(self.ego_motion_dir)
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


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """Silence datasets' own tqdm bars (progress goes through the ProgressSink)."""
    import datasets

    were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if were_on:
            datasets.enable_progress_bars()


def features(n: int) -> datasets.Features:
    """The declared columns of the dataset (docs/ARCHITECTURE.md) for n targets per second."""
    from datasets import Features, List, Value

    content = {"type": Value("string"), "text": Value("string"), "video": Value("string")}
    seq = List(Value("float32"), length=n)
    return Features(
        {
            "id": Value("string"),
            "clip_id": Value("string"),
            "chunk": Value("int32"),
            "segment_index": Value("int32"),
            "start_us": Value("int64"),
            "end_us": Value("int64"),
            "video": Value("string"),
            "messages": List({"role": Value("string"), "content": List(content)}),
            "velocity": seq,
            "curvature": seq,
            "history_velocity": seq,
            "history_curvature": seq,
        }
    )


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


def clip_order(clip_ids: list[str], seed: int) -> list[str]:
    """The clip ids in a seeded random order (a permutation of the sorted ids: independent of input order)."""
    ordered = sorted(set(clip_ids))
    perm = np.random.default_rng(seed).permutation(len(ordered))
    return [ordered[i] for i in perm]


def select_whole_clips(counts: dict[str, int], order: list[str], max_samples: int) -> list[str]:
    """Clips taken in `order` until their segments reach `max_samples` (the last clip is taken whole)."""
    chosen, total = [], 0
    for clip in order:
        if total >= max_samples:
            break
        chosen.append(clip)
        total += counts[clip]
    return chosen


def split_clips_random(order: list[str], test_ratio: float) -> dict[str, str]:
    """clip id -> "train"/"test": the first round(test_ratio * clips) of the seeded order are test.

    With two clips or more, each side gets at least one clip.
    """
    n = len(order)
    n_test = round(test_ratio * n)
    n_test = min(max(n_test, 1), n - 1) if n >= 2 else 0
    return {clip: ("test" if i < n_test else "train") for i, clip in enumerate(order)}


def split_clips_official(records: list[SegmentRecord], path: Path) -> dict[str, str]:
    """clip id -> "train"/"test" from the records' official `split` (train -> train, val/test -> test).

    Raises:
        PipelineError: a record has no or an unknown split, or one clip has two splits.
    """
    sides: dict[str, str] = {}
    for rec in records:
        if rec.split is None:
            raise PipelineError(f"{path}: segment {rec.id!r} has no field 'split' (needed by --split-by official)")
        side = OFFICIAL_SPLIT_MAP.get(rec.split)
        if side is None:
            raise PipelineError(f"{path}: segment {rec.id!r} has unknown split {rec.split!r} (train/val/test)")
        if sides.setdefault(rec.clip_id, side) != side:
            raise PipelineError(f"{path}: clip {rec.clip_id!r} has segments in both train and test splits")
    return sides


def build_messages(
    video: str, answer: str, system_prompt: str, prompt: str, history: str | None = None
) -> list[dict[str, Any]]:
    """The Qwen-VL conversation of one row: system text, user (video, then the prompt text), assistant answer."""
    user_text = prompt if history is None else f"{history}\n\n{prompt}"
    return [
        {"role": "system", "content": [{"type": "text", "text": system_prompt, "video": None}]},
        {
            "role": "user",
            "content": [
                {"type": "video", "text": None, "video": video},
                {"type": "text", "text": user_text, "video": None},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": answer, "video": None}]},
    ]


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


def clean_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy of `messages` without the None-valued keys that datasets adds to content dicts after a round trip."""
    cleaned = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = [{k: v for k, v in item.items() if v is not None} for item in content]
        cleaned.append({**message, "content": content})
    return cleaned


def answer_format_description(n: int) -> dict[str, Any]:
    """The answer format as recorded in dataset_meta.json."""
    return {
        "lines": n,
        "line": "{velocity:.2f},{curvature_per_km:.2f}",
        "velocity_unit": "m/s",
        "curvature_unit": "1/km (= 1e-3 1/m; the dataset columns are in 1/m)",
        "curvature_scale": CURVATURE_SCALE,
        "decimals": DECIMALS,
        "times": f"(k + 1) / {n} s after the end of the video, k = 0..{n - 1}",
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
`video` (mp4 path relative to `video_root` in `dataset_meta.json`; `pipeline.dataset.load_split` makes it
absolute), `messages` (system text; user = the video then the prompt{history_note}; assistant = the
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
from pipeline.dataset import load_split
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
    if config.ego_motion_dir is not None:
        logger.info("--ego-motion-dir %s is ignored: targets come from segments.json", config.ego_motion_dir)
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
    with _quiet_datasets(), atomic_dir(config.output_dir, overwrite=config.overwrite_output) as tmp:
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


def read_meta(dataset_dir: Path) -> dict[str, Any]:
    """dataset_meta.json of a built dataset.

    Raises:
        PipelineError: the file is missing or unreadable.
    """
    path = Path(dataset_dir) / META_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"not a dataset built by `pipeline build-dataset`: {path} is missing") from None
    except json.JSONDecodeError as err:
        raise PipelineError(f"{path}: not valid JSON ({err})") from None


def _absolute(root: Path, video: str | None) -> str | None:
    if video is None:
        return None
    return str(Path(video) if Path(video).is_absolute() else root / video)


def load_split(dataset_dir: Path | str, split: str, video_root: Path | str | None = None) -> datasets.Dataset:
    """One split of a built dataset with absolute video paths and clean messages.

    `video` and the message video paths are joined to `video_root` (default: the one in dataset_meta.json), and
    rows come out with the None keys that datasets adds to content dicts removed (a format transform, so it
    applies to `ds[i]`, slices and iteration; use `clean_messages` on data read another way).

    Raises:
        PipelineError: the dataset or the split does not exist.
    """
    import datasets

    dataset_dir = Path(dataset_dir)
    meta = read_meta(dataset_dir)
    if split not in SPLITS:
        raise PipelineError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    split_dir = dataset_dir / split
    if not split_dir.is_dir():
        raise PipelineError(f"split not found: {split_dir}")
    if video_root is None and not isinstance(meta.get("video_root"), str):
        raise PipelineError(f"{dataset_dir / META_FILE}: missing field 'video_root' (or pass video_root)")
    root = Path(video_root if video_root is not None else meta["video_root"]).resolve()
    ds = datasets.load_from_disk(str(split_dir))

    def absolute_paths(row: dict[str, Any]) -> dict[str, Any]:
        messages = row["messages"]
        for message in messages:
            for item in message["content"]:
                item["video"] = _absolute(root, item["video"])
        return {"video": _absolute(root, row["video"]), "messages": messages}

    with _quiet_datasets():
        ds = ds.map(absolute_paths, keep_in_memory=True)

    def clean(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if "messages" in batch:
            batch["messages"] = [clean_messages(m) for m in batch["messages"]]
        return batch

    return ds.with_transform(clean)


__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "META_FILE",
    "SPLITS",
    "BuildResult",
    "DatasetConfig",
    "SegmentRecord",
    "answer_format_description",
    "build_messages",
    "build_row",
    "clean_messages",
    "clip_order",
    "default_prompt",
    "features",
    "history_text",
    "load_split",
    "read_meta",
    "read_segments",
    "run",
    "select_whole_clips",
    "split_clips_official",
    "split_clips_random",
]
