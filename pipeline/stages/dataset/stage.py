"""Stage 3: turn the segment stage's records (`segments.parquet`, or `segments.json`) into a train/test Hugging Face
dataset in the Qwen-VL conversation format.

Each row is one segment: ids and timing, the video path relative to the segments directory (recorded as
`video_root` in `dataset_meta.json` and made absolute by `load_split`), the conversation in `messages`
(system text, user video + prompt, assistant answer from `pipeline.contracts.answer.format_answer`) and the targets as
float32 sequences. Every segment of a clip lands on the same side of the split (`pipeline.stages.dataset.split`).

The build streams: a first pass checks every record and counts clips (`scan`), a second writes the rows
batch by batch straight into each split's final Arrow shards (`rows`, `shards`; in `num_proc` worker processes for
parquet input, `writing`), in the layout `datasets.load_from_disk` reads. Memory stays flat in the number of
segments.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.contracts.answer import DECIMALS
from pipeline.contracts.dataset_reader import META_FILE, SPLITS, clean_messages, features, quiet_datasets
from pipeline.contracts.messages import DEFAULT_SYSTEM_PROMPT, answer_format_description, default_prompt
from pipeline.contracts.segments_reader import SegmentsFile
from pipeline.contracts.target_text import targets_prompt, trajectory_format_description
from pipeline.contracts.targets import SEGMENT_CONFIG_JSON, TARGETS_KEY, TargetSettings
from pipeline.core.atomic import atomic_dir
from pipeline.core.errors import PipelineError, first_line
from pipeline.core.permissions import check_writable
from pipeline.core.progress import NullProgress, ProgressSink
from pipeline.stages.dataset.config import DatasetConfig
from pipeline.stages.dataset.leakage import leakage_report, leakage_text
from pipeline.stages.dataset.planning import SplitPlan, plan_split, survey_sides
from pipeline.stages.dataset.rows import RowsJob, RowText, SplitRule
from pipeline.stages.dataset.scan import ScanResult, scan
from pipeline.stages.dataset.shards import finish_split, first_rows
from pipeline.stages.dataset.split import DRIVE_SPLIT_METHOD, SPLIT_METHOD, selection_cutoff, selection_keys
from pipeline.stages.dataset.writing import JobShards, job_ranges, write_jobs

log = logging.getLogger(__name__)

# Rows written to {split}_examples.json.
N_EXAMPLES = 5


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


def _split_text(meta: dict[str, Any]) -> str:
    """The card's description of the split (method, why, and the clips held out by name)."""
    ratio, seed = meta["test_ratio"], meta["seed"]
    text = {
        "clip": f"by clip: a keyed BLAKE2b hash of the clip id (seed {seed}, method {meta['split_method']}) mapped "
        f"to [0, 1); clips below {ratio:g} are test, so adding clips never moves one",
        "drive": f"by drive: a keyed BLAKE2b hash of the clip's drive key (seed {seed}, method "
        f"{meta['split_method']}) mapped to [0, 1); drives below {ratio:g} are test, so no drive key is on both "
        "sides and adding clips never moves one",
        "official": "official: the clip's `split` in clip_index.parquet (train -> train, val and test -> test)",
    }[meta["split_by"]]
    text += f" ({meta['split_by_reason']})" if meta["split_by_reason"] != "given" else ""
    held = meta["test_clips"]
    if held:
        drives = (
            "alone" if held["drive_neighbours_allowed"] else f"with every clip of their {held['held_drives']} drive(s)"
        )
        text += (
            f". Held out for test by name (`{held['file']}`): {held['found']} of {held['listed']} listed clips, "
            f"{drives}"
        )
    return text


def _dataset_card(meta: dict[str, Any], example_answer: str) -> str:
    n, hz = meta["n_targets"], meta["target_hz"]
    counts, clips = meta["counts"], meta["clip_counts"]
    paths = meta.get(TARGETS_KEY, {}).get("targets", "motion") != "motion"  # trajectory and both: path answers
    title, columns, answer = _path_card_text(meta) if paths else _motion_card_text(meta)
    first_lines = "\n".join(example_answer.splitlines()[:3])
    measured = "the measured path" if paths else "the input second's measured motion"
    history_note = f" after {measured}" if meta["history"] else ""
    return f"""# PhysicalAI-AV {title} dataset (Qwen-VL conversations)

Built by `pipeline build-dataset` from `{meta["segments_path"]}`.

| split | rows (segments) | clips |
|---|---|---|
| train | {counts["train"]} | {clips["train"]} |
| test | {counts["test"]} | {clips["test"]} |

Segments skipped because their video is missing: {meta["skipped_missing_video"]}.

**Split**: {_split_text(meta)}. Every segment of a clip is on the same side (overlapping windows share frames).

**Leakage**: {leakage_text(meta["leakage"])}.

**Rows**: `id`, `clip_id`, `chunk`, `segment_index`, `start_us`/`end_us` (segment window, microseconds),
`video` (mp4 path relative to `video_root` in `dataset_meta.json`; `pipeline.contracts.dataset_reader.load_split` makes
it absolute), `messages` (system text; user = the video then the prompt{history_note}; assistant = the
answer), float32 sequences of length {n}: `velocity` (m/s), `curvature` (1/m, positive = left turn)
over the next {n / hz:g} s, `history_velocity`, `history_curvature` for the input second{columns}.

**Answer format**: {answer} First lines of a train answer:

```
{first_lines}
```

Load a split with absolute video paths:

```python
from pipeline.contracts.dataset_reader import load_split
train = load_split("{meta["output_dir"]}", "train")
```
"""


def _motion_card_text(meta: dict[str, Any]) -> tuple[str, str, str]:
    """(title, extra columns, answer format) of the card of motion answers."""
    n, hz = meta["n_targets"], meta["target_hz"]
    answer = (
        f"{n} lines, line k (k = 1..{n}) = the motion k/{hz:g} s after the end of the video, written "
        f"`velocity,curvature` with velocity in m/s and curvature in **1/km** (1000 x the 1/m columns), both with "
        f"{DECIMALS} decimals (rounding error <= 0.005 m/s and <= 5e-6 1/m), never `-0.00`."
    )
    return "next-second motion", "", answer


def _path_card_text(meta: dict[str, Any]) -> tuple[str, str, str]:
    """(title, extra columns, answer format) of the card of path answers (`--targets trajectory` or `both`)."""
    settings, answer_format = meta[TARGETS_KEY], meta["answer_format"]
    lines, hz, rows = answer_format["lines"], settings["target_hz"], settings["history_steps"]
    columns = (
        f"; `future_xyh` ({lines}, 3) and `history_xyh` ({rows}, 3): x, y (m) and heading (rad) in the "
        f"{answer_format['frame']}, at (k + 1)/{hz:g} s after the window's end and {settings['history_hz']:g} Hz up "
        "to it (the last history row is the window's end)"
    )
    answer = (
        f"the future path, {lines} lines, line k (k = 1..{lines}) = the position k/{hz:g} s after the end of the "
        f"video, written `x,y` in metres in the {answer_format['frame']}, with {answer_format['decimals']} decimals, "
        "never `-0.00`."
    )
    return f"{settings['horizon_s']:g}-second ego-path", columns, answer


def _check_output(config: DatasetConfig) -> None:
    out = config.output_dir
    if out.exists() and not config.overwrite:
        raise PipelineError(f"output directory exists: {out} (pass --overwrite to replace it)")
    if out.exists() and not out.is_dir():
        raise PipelineError(f"--output-dir is a file, not a directory: {out}")
    if out.resolve() == config.video_root or config.video_root.is_relative_to(out.resolve()):
        raise PipelineError(f"--output-dir {out} would replace the segments directory it reads")
    check_writable(out)


def run(config: DatasetConfig, progress: ProgressSink | None = None) -> BuildResult:
    """Build the dataset directory: output_dir/{train,test} (sharded, as `save_to_disk` lays them out),
    dataset_meta.json, examples, README.md.

    Raises:
        PipelineError: a bad segments file, a missing video with `strict`, an existing output without
            `overwrite`, nothing left to write, or a row-writing job whose worker died on its every try.
    """
    import time

    progress = progress or NullProgress()
    t0 = time.perf_counter()
    _check_output(config)
    settings = segment_settings(config)
    source = SegmentsFile(config.segments_path, list_length(config, settings))
    plan = plan_split(config, source)
    found = _scan(config, source, plan.rule, progress)
    skipped = found.records - int(found.counts.sum())
    selection = _select(config, found, plan)
    meta = _meta(config, selection, skipped, plan, settings)
    with quiet_datasets(), atomic_dir(config.output_dir, overwrite=config.overwrite) as tmp:
        jobs = _rows_jobs(config, source, found, selection.rule, meta, tmp, settings)
        shards = write_jobs(jobs, config.num_proc, progress, found.records)
        if {s: sum(shard.rows for shard in shards[s]) for s in SPLITS} != selection.counts:
            raise PipelineError(f"{config.segments_path}: changed while the dataset was being built; run again")
        answer = _finish_splits(tmp, shards, meta, source.n)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(_dataset_card(meta, answer), encoding="utf-8")
    seconds = time.perf_counter() - t0
    log.info("wrote %s in %.1f s", config.output_dir, seconds)
    notes = [*plan.notes, *selection.notes]
    return BuildResult(config.output_dir, selection.counts, selection.clip_counts, skipped, seconds, notes)


@dataclass
class _Selection:
    """The segments the build keeps: whole clips, each on its side of the split."""

    # The split rule, with the --max-samples cutoff.
    rule: SplitRule
    # Rows per split.
    counts: dict[str, int]
    # Clips per split.
    clip_counts: dict[str, int]
    # Notes for the CLI summary.
    notes: list[str]
    # The leakage report (`leakage.leakage_report`).
    leakage: dict[str, Any]


def _scan(config: DatasetConfig, source: SegmentsFile, rule: SplitRule, progress: ProgressSink) -> ScanResult:
    """Check every record and count the clips; PipelineError when no segment video exists."""
    root = config.video_root
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
    return found


def _select(config: DatasetConfig, found: ScanResult, plan: SplitPlan) -> _Selection:
    """The clips kept (all, or the first ones by selection key for --max-samples), their sides and leakage.

    Raises:
        PipelineError: a side gets no clip, without --allow-empty-split.
    """
    rule = plan.rule
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
    _check_sides(config, rule.split_by, clip_counts, notes)
    log.info(
        "split by %s: train %d segments / %d clips, test %d segments / %d clips",
        rule.split_by,
        counts["train"],
        clip_counts["train"],
        counts["test"],
        clip_counts["test"],
    )
    kept = np.isin(selection_keys(config.seed, plan.survey.clip_ids.tolist()), found.keys[chosen])
    clips = plan.survey
    leakage = leakage_report(clips.drives[kept], clips.offsets_us[kept], survey_sides(rule, clips)[kept])
    log.info("leakage: %s", leakage_text(leakage))
    return _Selection(rule, counts, clip_counts, notes, leakage)


def _check_sides(config: DatasetConfig, split_by: str, clip_counts: dict[str, int], notes: list[str]) -> None:
    """An empty side is an error (one line: the counts and what to change), a note with --allow-empty-split."""
    if all(clip_counts.values()):
        return
    counts = f"train got {clip_counts['train']} clip(s) and test {clip_counts['test']}"
    if not config.allow_empty_split:
        change = "another --split-by" if split_by == "official" else "another --seed or --test-ratio"
        raise PipelineError(
            f"the {split_by} split leaves a side empty: {counts}; try {change}, add clips, or pass --allow-empty-split"
        )
    notes.append(f"a split is empty ({counts}); written anyway (--allow-empty-split)")
    log.warning(notes[-1])


def _meta(
    config: DatasetConfig, selection: _Selection, skipped: int, plan: SplitPlan, settings: TargetSettings | None
) -> dict[str, Any]:
    """dataset_meta.json: what the build read, its settings, counts, leakage and prompts."""
    n = config.target_hz
    extended = _extended(settings)
    split_by = selection.rule.split_by
    return {
        "video_root": str(config.video_root),
        "segments_path": str(config.segments_path.resolve()),
        "output_dir": str(config.output_dir.resolve()),
        "target_hz": n,
        "n_targets": list_length(config, settings),
        "split_by": split_by,
        "split_by_reason": plan.reason,
        "split_method": DRIVE_SPLIT_METHOD if split_by == "drive" else SPLIT_METHOD,
        "test_clips": plan.test_clips,
        "leakage": selection.leakage,
        "seed": config.seed,
        "test_ratio": config.test_ratio,
        "history": config.history,
        "counts": selection.counts,
        "clip_counts": selection.clip_counts,
        "skipped_missing_video": skipped,
        "answer_format": trajectory_format_description(settings.n_future)
        if extended and settings.trajectory
        else answer_format_description(list_length(config, settings)),
        "system_prompt": config.system_prompt or DEFAULT_SYSTEM_PROMPT,
        "prompt": config.prompt or (targets_prompt(settings) if extended else default_prompt(n)),
        "config": config.to_json(),
        **({TARGETS_KEY: settings.to_json()} if extended else {}),
    }


def segment_settings(config: DatasetConfig) -> TargetSettings | None:
    """The target settings the segments were cut with (`segment_config.json` beside the segments file), or None
    where that file or its "targets" object is absent (segments of an older version)."""
    path = config.segments_path.parent / SEGMENT_CONFIG_JSON
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")).get(TARGETS_KEY)
    except (OSError, ValueError):
        return None
    if recorded is None:
        return None
    try:
        return TargetSettings.from_json(recorded)
    except (KeyError, TypeError) as err:
        raise PipelineError(f"{path}: bad {TARGETS_KEY!r} object ({first_line(err)})") from None


def list_length(config: DatasetConfig, settings: TargetSettings | None) -> int:
    """Values per target list: --target-hz, times the segments' horizon where they record one (s)."""
    if settings is None:
        return config.target_hz
    if settings.target_hz != config.target_hz:
        raise PipelineError(
            f"--target-hz {config.target_hz}: the segments in {config.segments_path.parent} were cut at "
            f"{settings.target_hz:g} targets per second (pass --target-hz {settings.target_hz:g})"
        )
    return settings.n_future


def _extended(settings: TargetSettings | None) -> bool:
    """The rows carry cameras, videos and trajectories: the segments have trajectories or several cameras (a
    one-camera motion build keeps its columns and bytes)."""
    return settings is not None and (settings.trajectory or len(settings.cameras) > 1)


def _rows_jobs(
    config: DatasetConfig,
    source: SegmentsFile,
    found: ScanResult,
    rule: SplitRule,
    meta: dict[str, Any],
    tmp: Path,
    settings: TargetSettings | None,
) -> list[RowsJob]:
    """One row-writing job per range of parts (`job_ranges`), writing under `tmp` with the prompts of `meta`."""
    return [
        RowsJob(
            path=source.path,
            n=source.n,
            parts=parts,
            index=i,
            out_dir=tmp,
            rule=rule,
            missing=found.missing,
            text=RowText(
                system_prompt=meta["system_prompt"],
                prompt=meta["prompt"],
                history=config.history,
                trajectory=_extended(settings) and settings.trajectory,
                history_hz=settings.history_hz if settings else RowText.history_hz,
            ),
            max_shard_bytes=int(config.max_shard_mb * 10**6),
            extended=_extended(settings),
        )
        for i, parts in enumerate(job_ranges(source.part_rows(), config.num_proc))
    ]


def _finish_splits(tmp: Path, shards: JobShards, meta: dict[str, Any], n: int) -> str:
    """Name each split's shards and write its state files and `{split}_examples.json`; the first example answer
    ("" when both splits are empty)."""
    answer = None
    feats = features(n, TARGETS_KEY in meta)
    identity = json.dumps(meta, sort_keys=True)
    for split in SPLITS:
        names = finish_split(tmp / split, split, shards[split], feats, identity)
        examples = [
            dict(r, messages=clean_messages(r["messages"])) for r in first_rows(tmp / split, names, N_EXAMPLES)
        ]
        path = tmp / f"{split}_examples.json"
        path.write_text(json.dumps(examples, indent=2) + "\n", encoding="utf-8")
        answer = answer or (examples[0]["messages"][-1]["content"][0]["text"] if examples else None)
    return answer or ""


__all__ = ["BuildResult", "DatasetConfig", "run"]
