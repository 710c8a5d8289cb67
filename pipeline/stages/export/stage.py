"""`pipeline export`: write a built dataset as the training JSONL of the main Qwen-VL fine-tuning frameworks.

Layout under `output_dir` (one folder per framework, `{train,test}.jsonl` in each, plus what it needs beside it):

- `qwen-vl-finetune/` (QwenLM Qwen2.5-VL / Qwen3-VL `qwen-vl-finetune`): LLaVA-style records
  ``{"video": <path relative to data_path>, "conversations": [{"from": "human", "value": "<video>\\n..."},
  {"from": "gpt", "value": <answer>}]}``; `physicalai_av_data.py` holds the `annotation_path` / `data_path` dicts
  to add to `qwenvl/data/__init__.py`'s `data_dict`. That trainer has no system turn, so the system prompt is
  put at the start of the human turn (after the video tag).
- `llama-factory/` (hiyouga/LLaMA-Factory, sharegpt format with OpenAI-style tags): ``{"messages": [system, user
  "<video>...", assistant], "videos": [<absolute path>]}`` and the `dataset_info.json` entries (point
  LLaMA-Factory's `dataset_dir` at this folder).
- `ms-swift/` (modelscope/ms-swift standard format): ``{"messages": [...], "videos": [<absolute path>]}``, used
  with `swift sft --dataset train.jsonl --val_dataset test.jsonl`.

Exactly one `<video>` tag per video, in the user turn; none in assistant turns. Several cameras: the record's videos
are a list in the conversation's camera order (qwen-vl-finetune's `video` becomes a list, the others' `videos` hold
them all) and the user turn keeps the dataset's layout with a tag where each video stands,
`front wide camera:<video>\ncross left camera:<video>\n<prompt>` (qwen-vl-finetune: after the system prompt).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.contracts.dataset_reader import SPLITS, read_meta, split_num_rows, split_rows
from pipeline.contracts.video_files import VideoFiles
from pipeline.core.atomic import atomic_dir
from pipeline.core.errors import PipelineError
from pipeline.core.permissions import check_writable
from pipeline.core.progress import NullProgress, ProgressSink
from pipeline.stages.export.config import FORMATS, ExportConfig
from pipeline.stages.export.video import readme_section, run_file

log = logging.getLogger(__name__)

VIDEO_TAG = "<video>"
# Media placeholders the frameworks substitute; prompts must not contain them literally.
MEDIA_TAGS = ("<video>", "<image>", "<audio>")
QWEN_REGISTRATION_FILE = "physicalai_av_data.py"


@dataclass
class ExportResult:
    """What `run` wrote."""

    # The export directory.
    output_dir: Path
    # framework -> files written (final paths).
    files: dict[str, list[Path]] = field(default_factory=dict)
    # split -> records per framework file.
    counts: dict[str, int] = field(default_factory=dict)
    # Video files of the records (one per camera) that do not exist (the records are still written).
    missing_videos: int = 0


@dataclass
class Conversation:
    """One dataset row reduced to what the exports need."""

    # Row id.
    id: str
    # System prompt text.
    system: str
    # User text (the prompt, with the history block if the dataset has one; with several cameras, their names too).
    user: str
    # Assistant answer text.
    answer: str
    # Absolute video paths, one per camera in the conversation's order.
    videos: list[str]
    # The user turn in order with a `<video>` tag where each video stands.
    tagged_user: str


def conversation(row: dict[str, Any]) -> Conversation:
    """Extract system/user/assistant texts and the video from a `load_split` row (absolute paths, clean messages).

    Raises:
        PipelineError: the row does not have the system, user (videos + text), assistant layout, or a text holds a
            literal media tag.
    """
    roles = [m["role"] for m in row["messages"]]
    if roles != ["system", "user", "assistant"]:
        raise PipelineError(f"row {row['id']}: expected system, user, assistant messages, got {roles}")
    texts: dict[str, str] = {}
    videos: dict[str, list[str]] = {}
    for message in row["messages"]:
        role = message["role"]
        items = message["content"]
        videos[role] = [item["video"] for item in items if item.get("type") == "video"]
        texts[role] = "\n".join(item["text"] for item in items if item.get("type") == "text")
    if not videos["user"] or videos["system"] or videos["assistant"]:
        raise PipelineError(f"row {row['id']}: expected its videos in the user turn, and only there")
    user_items = row["messages"][1]["content"]
    tagged = "".join(VIDEO_TAG if item.get("type") == "video" else item.get("text") or "" for item in user_items)
    for role, text in texts.items():
        for tag in MEDIA_TAGS:
            if tag in text:
                raise PipelineError(f"row {row['id']}: the {role} text contains a literal {tag} tag")
    return Conversation(row["id"], texts["system"], texts["user"], texts["assistant"], videos["user"], tagged)


def qwen_vl_finetune_record(conv: Conversation, video_root: Path) -> dict[str, Any]:
    """qwen-vl-finetune record; video paths are relative to `video_root` (the registration's `data_path`): one
    path, or a list of them (several cameras)."""
    paths = [Path(video).relative_to(video_root).as_posix() for video in conv.videos]
    if len(paths) == 1:
        return {
            "id": conv.id,
            "video": paths[0],
            "conversations": [
                {"from": "human", "value": f"{VIDEO_TAG}\n{conv.system}\n\n{conv.user}"},
                {"from": "gpt", "value": conv.answer},
            ],
        }
    return {
        "id": conv.id,
        "video": paths,
        "conversations": [
            {"from": "human", "value": f"{conv.system}\n\n{conv.tagged_user}"},
            {"from": "gpt", "value": conv.answer},
        ],
    }


def messages_record(conv: Conversation) -> dict[str, Any]:
    """LLaMA-Factory (sharegpt + OpenAI tags) and ms-swift record: messages with a system turn, absolute videos
    in the order of their tags."""
    return {
        "messages": [
            {"role": "system", "content": conv.system},
            {"role": "user", "content": conv.tagged_user},
            {"role": "assistant", "content": conv.answer},
        ],
        "videos": list(conv.videos),
    }


def llama_factory_dataset_info(name: str) -> dict[str, Any]:
    """The `dataset_info.json` entries for `{name}_train` and `{name}_test` (files beside it)."""
    entry = {
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "videos": "videos"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
            "system_tag": "system",
        },
    }
    return {f"{name}_{split}": {"file_name": f"{split}.jsonl", **entry} for split in SPLITS}


def qwen_registration(name: str, folder: Path, video_root: Path) -> str:
    """Python source of the dataset dicts for qwen-vl-finetune's `qwenvl/data/__init__.py`."""
    lines = [
        '"""Dataset registration for QwenLM qwen-vl-finetune: copy into qwenvl/data/__init__.py (written by',
        "`pipeline export`). Then train with --dataset_use " + f'{name}_train."""',
        "",
    ]
    for split in SPLITS:
        lines += [
            f"{name.upper()}_{split.upper()} = {{",
            f'    "annotation_path": {json.dumps(str(folder / f"{split}.jsonl"))},',
            f'    "data_path": {json.dumps(str(video_root))},',
            "}",
            "",
        ]
    lines.append(
        "data_dict_entries = {" + ", ".join(f'"{name}_{s}": {name.upper()}_{s.upper()}' for s in SPLITS) + "}"
    )
    lines.append("# In qwenvl/data/__init__.py: data_dict.update(data_dict_entries)")
    return "\n".join(lines) + "\n"


def _readme(framework: str, name: str, folder: Path, video_root: Path, counts: dict[str, int]) -> str:
    head = f"# {framework} export of the PhysicalAI-AV motion dataset\n\nRecords: " + ", ".join(
        f"{s} {counts[s]}" for s in SPLITS
    )
    if framework == "qwen-vl-finetune":
        body = f"""
Videos are relative to `data_path` = `{video_root}`. Register the dataset by adding the dicts of
`{QWEN_REGISTRATION_FILE}` to `data_dict` in `qwenvl/data/__init__.py`, then train with
`--dataset_use {name}_train`. The trainer has no system turn: the system prompt opens the human turn.

```python
{qwen_registration(name, folder, video_root)}```
"""
    elif framework == "llama-factory":
        body = f"""
Video paths are absolute. `dataset_info.json` registers `{name}_train` and `{name}_test`; in the training YAML:

```yaml
dataset_dir: {folder}
dataset: {name}_train
eval_dataset: {name}_test
```
"""
    else:
        body = f"""
Standard ms-swift format (`messages` with a system turn, `videos` with absolute paths):

```bash
swift sft --dataset {folder / "train.jsonl"} --val_dataset {folder / "test.jsonl"} ...
```
"""
    return head + "\n" + body


def _record(framework: str, conv: Conversation, video_root: Path) -> dict[str, Any]:
    return qwen_vl_finetune_record(conv, video_root) if framework == "qwen-vl-finetune" else messages_record(conv)


def _write_split(
    dataset: Path, split: str, folders: dict[str, Path], video_root: Path, progress: ProgressSink
) -> tuple[int, int]:
    """Stream one split, a batch at a time, into `{split}.jsonl` of every framework folder.

    Returns:
        (records written, their video files that are missing), videos checked one directory listing per clip.

    Raises:
        PipelineError: a bad row (`dataset_reader`): the caller's atomic directory then leaves nothing behind.
    """
    import pyarrow as pa

    rows = split_num_rows(dataset, split)
    videos = VideoFiles()
    count = missing = 0
    files = {
        framework: (folder / f"{split}.jsonl").open("w", encoding="utf-8") for framework, folder in folders.items()
    }
    progress.start(f"writing {split}", rows)
    try:
        for batch in split_rows(dataset, split, ["id", "messages"]):
            convs = [
                conversation({"id": i, "messages": m}) for i, m in zip(batch["id"], batch["messages"], strict=True)
            ]
            paths = pa.array([v for c in convs for v in c.videos], type=pa.string())
            missing += int((~videos.exist("", paths)).sum())
            for framework, f in files.items():
                f.writelines(json.dumps(_record(framework, c, video_root), ensure_ascii=False) + "\n" for c in convs)
            count += len(convs)
            progress.advance(len(convs))
    finally:
        for f in files.values():
            f.close()
        progress.finish()
    return count, missing


def run(config: ExportConfig, progress: ProgressSink | None = None) -> ExportResult:
    """Write the exports of `config.dataset` for `config.formats` into `config.output_dir` (atomically), streaming
    each split so that memory does not grow with its size.

    Raises:
        PipelineError: the dataset is missing or malformed (or holds a bad row, `dataset_reader`), the output exists
            without `overwrite`, or it cannot be written.
    """
    progress = progress or NullProgress()
    meta = read_meta(config.dataset)
    video_root = Path(meta["video_root"]).resolve()
    out = config.output_dir
    if out.exists() and not config.overwrite:
        raise PipelineError(f"output directory exists: {out} (pass --overwrite to replace it)")
    check_writable(out)
    final = out.resolve()

    result = ExportResult(final)
    with atomic_dir(out, overwrite=config.overwrite) as tmp:
        folders = {framework: tmp / framework for framework in config.formats}
        for folder in folders.values():
            folder.mkdir()
        for split in SPLITS:
            result.counts[split], missing = _write_split(config.dataset, split, folders, video_root, progress)
            result.missing_videos += missing
        if result.missing_videos:
            log.warning("%d video file(s) of the records do not exist (under %s)", result.missing_videos, video_root)
        for framework in config.formats:
            folder, final_folder = folders[framework], final / framework
            names = [f"{split}.jsonl" for split in SPLITS]
            if framework == "qwen-vl-finetune":
                source = qwen_registration(config.name, final_folder, video_root)
                (folder / QWEN_REGISTRATION_FILE).write_text(source, encoding="utf-8")
                names.append(QWEN_REGISTRATION_FILE)
            elif framework == "llama-factory":
                info = llama_factory_dataset_info(config.name)
                (folder / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
                names.append("dataset_info.json")
            run_name, run_text = run_file(framework, config.video, config.model, final_folder, config.name)
            (folder / run_name).write_text(run_text, encoding="utf-8")
            names.append(run_name)
            readme = _readme(framework, config.name, final_folder, video_root, result.counts)
            readme += readme_section(framework, config.video, run_name)
            (folder / "README.md").write_text(readme, encoding="utf-8")
            names.append("README.md")
            result.files[framework] = [final_folder / n for n in names]
        export_meta = {
            "config": config.to_json(),
            "video_root": str(video_root),
            "counts": result.counts,
            "missing_videos": result.missing_videos,
        }
        (tmp / "export_meta.json").write_text(json.dumps(export_meta, indent=2) + "\n", encoding="utf-8")
    log.info("exported %s to %s", ", ".join(config.formats), final)
    return result


__all__ = [
    "FORMATS",
    "Conversation",
    "ExportConfig",
    "ExportResult",
    "conversation",
    "llama_factory_dataset_info",
    "messages_record",
    "qwen_registration",
    "qwen_vl_finetune_record",
    "run",
]
