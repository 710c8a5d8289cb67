"""Stage 3: turn the segment stage's records (`segments.parquet`, or `segments.json`) into a train/test Hugging Face
dataset in the Qwen-VL conversation format.

Each row is one segment: ids and timing, the video path relative to the segments directory (recorded as
`video_root` in `dataset_meta.json` and made absolute by `load_split`), the conversation in `messages`
(system text, user video + prompt, assistant answer from `pipeline.answer.format_answer`) and the targets as
float32 sequences. Every segment of a clip lands on the same side of the split (`pipeline.clip_split`).

The build streams: a first pass checks every record and counts clips (`dataset_scan`), a second writes the rows
batch by batch to Arrow files (`dataset_rows`, in `num_proc` processes for parquet input), which `save_to_disk`
shards. Memory stays flat in the number of segments.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.answer import DECIMALS
from pipeline.atomic import atomic_dir
from pipeline.clip_split import SPLIT_METHOD, selection_cutoff
from pipeline.dataset_reader import META_FILE, SPLITS, clean_messages, features, quiet_datasets
from pipeline.dataset_rows import PartJob, SplitRule, part_file, write_part
from pipeline.dataset_scan import scan
from pipeline.errors import PipelineError
from pipeline.messages import DEFAULT_SYSTEM_PROMPT, answer_format_description, default_prompt
from pipeline.options import overwrite_setting, setting
from pipeline.progress import NullProgress, ProgressSink
from pipeline.segments_reader import SegmentsFile

log = logging.getLogger(__name__)

# Rows written to {split}_examples.json.
N_EXAMPLES = 5


@dataclass
class DatasetConfig:
    """Settings of `pipeline build-dataset`."""

    # Its parent's parent is the segments directory, the root of the records' video paths.
    segments_path: Path = setting(
        Path("qwen_video_segments/metadata/segments.parquet"),
        help="segments.parquet (or segments.json) written by `pipeline segment`.",
    )
    # Receives train/, test/, dataset_meta.json, README.md and the examples.
    output_dir: Path = setting(Path("qwen_video_dataset"), help="Dataset directory to write.")
    # Clips, not segments; strictly between 0 and 1.
    test_ratio: float = setting(0.1, help="Fraction of clips held out (--split-by clip).")
    # Must equal the length of the segments' target lists; `target_hz` in dataset_meta.json.
    target_hz: int = setting(
        30,
        help="Targets per second; must match the segments file. --fps is the original scripts' name.",
        flags=("--target-hz", "--target_hz", "--fps"),
    )
    # Whole clips in keyed-hash order until the count is reached.
    max_samples: int | None = setting(None, help="Keep about this many segments, whole clips only.")
    # Replaced only once the new one is complete.
    overwrite: bool = overwrite_setting()
    # Key of the clip hashes (split side and --max-samples order).
    seed: int = setting(42, help="Seed of the clip split and selection.")
    # "clip": keyed hash of the clip id; "official": the segments' `split` field (train -> train, val/test -> test).
    split_by: Literal["clip", "official"] = setting("clip", help="clip (seeded, by clip id) or official (clip_index).")
    # The input second's (velocity, curvature) pairs in the user prompt.
    history: bool = setting(
        False, help="Put the input second's motion in the prompt.", flags=("--history/--no-history",)
    )
    # None = DEFAULT_SYSTEM_PROMPT.
    system_prompt: str | None = setting(None, help="Override the system prompt.")
    # None = default_prompt(target_hz).
    prompt: str | None = setting(None, help="Override the user instruction.")
    # Instead of being skipped and counted.
    strict: bool = setting(False, help="A missing segment video is an error.")
    # By row group; a JSON file is read by one process.
    num_proc: int = setting(1, help="Processes writing rows (parquet input).")
    # MB = 1e6 bytes; training streams shards in parallel dataloader workers.
    max_shard_mb: float = setting(500.0, help="Largest Arrow shard of a split, MB.")

    def __post_init__(self) -> None:
        self.segments_path = Path(self.segments_path)
        self.output_dir = Path(self.output_dir)
        if not (isinstance(self.test_ratio, int | float) and 0.0 < float(self.test_ratio) < 1.0):
            raise PipelineError(f"--test-ratio must be strictly between 0 and 1, got {self.test_ratio}")
        if int(self.target_hz) != self.target_hz or self.target_hz < 1:
            raise PipelineError(
                f"--target-hz must be a positive whole number of targets per second, got {self.target_hz}"
            )
        self.target_hz = int(self.target_hz)
        if self.max_samples is not None and self.max_samples < 1:
            raise PipelineError(f"--max-samples must be at least 1, got {self.max_samples}")
        if self.split_by not in ("clip", "official"):
            raise PipelineError(f"--split-by must be 'clip' or 'official', got {self.split_by!r}")
        if self.system_prompt is not None and not self.system_prompt.strip():
            raise PipelineError("--system-prompt must not be empty")
        if self.prompt is not None and not self.prompt.strip():
            raise PipelineError("--prompt must not be empty")
        if self.num_proc < 1:
            raise PipelineError(f"--num-proc must be at least 1, got {self.num_proc}")
        if not self.max_shard_mb > 0:
            raise PipelineError(f"--max-shard-mb must be positive, got {self.max_shard_mb}")

    @property
    def video_root(self) -> Path:
        """Absolute segments directory: the records' `video` paths are relative to it."""
        parent = self.segments_path.resolve().parent
        return parent.parent if parent.name == "metadata" else parent

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


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


def _dataset_card(meta: dict[str, Any], example_answer: str) -> str:
    n = meta["target_hz"]
    counts, clips = meta["counts"], meta["clip_counts"]
    split_text = (
        f"by clip: a keyed BLAKE2b hash of the clip id (seed {meta['seed']}, method {meta['split_method']}) mapped "
        f"to [0, 1); clips below {meta['test_ratio']:g} are test, so adding clips never moves one"
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
    if out.exists() and not config.overwrite:
        raise PipelineError(f"output directory exists: {out} (pass --overwrite to replace it)")
    if out.exists() and not out.is_dir():
        raise PipelineError(f"--output-dir is a file, not a directory: {out}")
    if out.resolve() == config.video_root or config.video_root.is_relative_to(out.resolve()):
        raise PipelineError(f"--output-dir {out} would replace the segments directory it reads")


def run(config: DatasetConfig, progress: ProgressSink | None = None) -> BuildResult:
    """Build the dataset directory: output_dir/{train,test} (sharded save_to_disk), dataset_meta.json, examples,
    README.md.

    Raises:
        PipelineError: a bad segments file, a missing video with `strict`, an existing output without
            `overwrite`, or nothing left to write.
    """
    import time

    progress = progress or NullProgress()
    t0 = time.perf_counter()
    _check_output(config)
    n = config.target_hz
    source = SegmentsFile(config.segments_path, n)
    root = config.video_root
    rule = SplitRule(config.split_by, config.seed, config.test_ratio)
    progress.start("checking segments", source.records)
    try:
        found = scan(source, rule, root, config.strict, progress)
    finally:
        progress.finish()
    kept = int(found.counts.sum())
    skipped = found.records - kept
    log.info("checked %d segments of %s (video root %s)", found.records, config.segments_path, root)
    if skipped:
        log.warning("skipped %d segment(s) whose video is missing, e.g. %s", skipped, root / min(found.missing))
    if not kept:
        raise PipelineError(f"{config.segments_path}: none of the {found.records} segment videos exist under {root}")

    chosen = found.counts > 0
    notes: list[str] = []
    if config.max_samples is not None:
        cutoff = selection_cutoff(found.keys[chosen], found.counts[chosen], config.max_samples)
        rule = replace(rule, cutoff=cutoff)
        chosen &= found.keys <= np.uint64(cutoff)
        notes.append(
            f"--max-samples {config.max_samples}: kept {int(found.counts[chosen].sum())} segments "
            f"from {int(chosen.sum())} whole clip(s)"
        )
        log.info(notes[-1])
    sides = {"train": chosen & ~found.is_test, "test": chosen & found.is_test}
    counts = {s: int(found.counts[sides[s]].sum()) for s in SPLITS}
    clip_counts = {s: int(sides[s].sum()) for s in SPLITS}
    for split in SPLITS:
        if not clip_counts[split]:
            notes.append(f"the {split} split is empty: no clip falls on it (clips are never moved to fill a side)")
            log.warning(notes[-1])
    log.info(
        "split by %s: train %d segments / %d clips, test %d segments / %d clips",
        config.split_by,
        counts["train"],
        clip_counts["train"],
        counts["test"],
        clip_counts["test"],
    )

    system_prompt = config.system_prompt or DEFAULT_SYSTEM_PROMPT
    prompt = config.prompt or default_prompt(n)
    meta = {
        "video_root": str(root),
        "segments_path": str(config.segments_path.resolve()),
        "output_dir": str(config.output_dir.resolve()),
        "target_hz": n,
        "split_by": config.split_by,
        "split_method": SPLIT_METHOD,
        "seed": config.seed,
        "test_ratio": config.test_ratio,
        "history": config.history,
        "counts": counts,
        "clip_counts": clip_counts,
        "skipped_missing_video": skipped,
        "answer_format": answer_format_description(n),
        "system_prompt": system_prompt,
        "prompt": prompt,
        "config": config.to_json(),
    }
    with quiet_datasets(), atomic_dir(config.output_dir, overwrite=config.overwrite) as tmp:
        jobs = [
            PartJob(source.path, n, parts, i, tmp, rule, found.missing, system_prompt, prompt, config.history)
            for i, parts in enumerate(_part_ranges(source.parts))
        ]
        written = _write_parts(jobs, config.num_proc, progress)
        if written != counts:
            raise PipelineError(f"{config.segments_path}: changed while the dataset was being built; run again")
        answer = None
        for split in SPLITS:
            examples = _save_split(config, [part_file(tmp, split, job.index) for job in jobs], tmp / split)
            path = tmp / f"{split}_examples.json"
            path.write_text(json.dumps(examples, indent=2) + "\n", encoding="utf-8")
            answer = answer or (examples[0]["messages"][-1]["content"][0]["text"] if examples else None)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(_dataset_card(meta, answer or ""), encoding="utf-8")
    seconds = time.perf_counter() - t0
    log.info("wrote %s in %.1f s", config.output_dir, seconds)
    return BuildResult(config.output_dir, counts, clip_counts, skipped, seconds, notes)


def _part_ranges(parts: int) -> list[range]:
    """One job per part (a parquet row group), so progress and processes advance part by part."""
    return [range(i, i + 1) for i in range(parts)]


def _write_parts(jobs: list[PartJob], num_proc: int, progress: ProgressSink) -> dict[str, int]:
    """Run the row-writing jobs (in `num_proc` processes when there is more than one job); rows written per side."""
    totals = dict.fromkeys(SPLITS, 0)
    progress.start("writing rows", len(jobs))
    try:
        if num_proc > 1 and len(jobs) > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=min(num_proc, len(jobs))) as pool:
                results = pool.map(write_part, jobs)
                for counts in results:
                    totals = {s: totals[s] + counts[s] for s in SPLITS}
                    progress.advance()
        else:
            for job in jobs:
                counts = write_part(job)
                totals = {s: totals[s] + counts[s] for s in SPLITS}
                progress.advance()
    finally:
        progress.finish()
    return totals


def _save_split(config: DatasetConfig, files: list[Path], out: Path) -> list[dict[str, Any]]:
    """Save the part files of one split as sharded Arrow (`save_to_disk`), delete them; return the first rows."""
    import datasets

    split = datasets.Split(out.name)
    parts = [datasets.Dataset.from_file(str(f), split=split) for f in files]
    filled = [p for p in parts if len(p)]
    if filled:
        ds = datasets.concatenate_datasets(filled, split=split)
    else:  # a stream without batches has no table to concatenate
        feats = features(config.target_hz)
        ds = datasets.Dataset.from_dict({name: [] for name in feats}, features=feats, split=split)
    if len(ds):
        ds.save_to_disk(str(out), max_shard_size=int(config.max_shard_mb * 10**6))
    else:  # datasets writes no file at all for an empty split unless told one shard (and cannot load it then)
        ds.save_to_disk(str(out), num_shards=1)
    examples = [dict(r, messages=clean_messages(r["messages"])) for r in ds.select(range(min(N_EXAMPLES, len(ds))))]
    del ds, parts
    for f in files:
        f.unlink()
    return examples


__all__ = ["BuildResult", "DatasetConfig", "run"]
