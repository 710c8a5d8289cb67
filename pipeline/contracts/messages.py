"""The conversation format of a dataset row: system prompt, user prompt (optionally after the input second's
motion), the Qwen-VL message list, and the answer format as `dataset_meta.json` records it.

Several cameras: the user turn holds one video part per camera, in the dataset's `cameras` order, each after a
text part naming its camera (`camera_label`): `front wide camera:` video, `\ncross left camera:` video, ..., then
`\n` and the prompt. Qwen-VL templates render text parts verbatim and each video as its vision block, so the
prompt reads `front wide camera:<|vision_start|>...<|vision_end|>\ncross left camera:<|vision_start|>...`. One
camera keeps today's conversation exactly: the video, then the prompt, no camera name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.contracts.answer import CURVATURE_SCALE, DECIMALS, format_answer

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


def user_text(prompt: str, history: str | None = None) -> str:
    """The user turn's text: the prompt, after the history block when there is one."""
    return prompt if history is None else f"{history}\n\n{prompt}"


def camera_label(camera: str) -> str:
    """The name a prompt gives a camera feature: `camera_front_wide_120fov` -> `front wide camera`."""
    words = camera.removeprefix("camera_").split("_")
    if len(words) > 1 and words[-1].endswith("fov"):
        words = words[:-1]
    return " ".join([*words, "camera"])


def build_messages(
    video: str | Sequence[str],
    answer: str,
    system_prompt: str,
    prompt: str,
    history: str | None = None,
    cameras: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The Qwen-VL conversation of one row: system text, user (the videos, then the prompt text), assistant answer.

    `video` is one path (one camera: today's conversation) or one path per camera in `cameras` order; with several,
    each video follows a text part naming its camera (module docstring).

    Raises:
        ValueError: a video count that differs from `cameras`' (when `cameras` is given, or for several videos).
    """
    videos = [video] if isinstance(video, str) else list(video)
    return _conversation(videos, answer, system_prompt, user_text(prompt, history), cameras)


def _video_parts(videos: Sequence[str], cameras: Sequence[str], user: str) -> list[dict[str, Any]]:
    if len(videos) != len(cameras) and (cameras or len(videos) != 1):
        raise ValueError(f"{len(videos)} videos for {len(cameras)} cameras ({', '.join(cameras) or 'none'})")
    if len(videos) == 1:
        return [{"type": "video", "text": None, "video": videos[0]}, {"type": "text", "text": user, "video": None}]
    parts: list[dict[str, Any]] = []
    for k, (path, camera) in enumerate(zip(videos, cameras, strict=True)):
        name = f"{camera_label(camera)}:" if k == 0 else f"\n{camera_label(camera)}:"
        parts += [{"type": "text", "text": name, "video": None}, {"type": "video", "text": None, "video": path}]
    return [*parts, {"type": "text", "text": f"\n{user}", "video": None}]


def _conversation(
    videos: Sequence[str], answer: str, system_prompt: str, user: str, cameras: Sequence[str]
) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": [{"type": "text", "text": system_prompt, "video": None}]},
        {"role": "user", "content": _video_parts(videos, cameras, user)},
        {"role": "assistant", "content": [{"type": "text", "text": answer, "video": None}]},
    ]


def messages_column(
    videos: Sequence[str | Sequence[str]],
    answers: list[str],
    system_prompt: str,
    user_texts: list[str],
    arrow_type: Any,
    cameras: Sequence[str] = (),
) -> Any:
    """`build_messages` of many rows as one Arrow array of `arrow_type` (the dataset's `messages` type), assembled
    column-wise from the same conversation layout (for speed on large batches). `videos[i]` is row i's one path,
    or its paths in `cameras` order.

    Raises:
        ValueError: rows with different video counts, or several videos per row whose count differs from `cameras`'.
    """
    import pyarrow as pa

    rows = len(videos)
    per_row = [[v] if isinstance(v, str) else list(v) for v in videos]
    count = len(per_row[0]) if per_row else max(len(cameras), 1)
    if any(len(paths) != count for paths in per_row):
        raise ValueError(f"every row needs {count} videos (one per camera)")
    slots: dict[str, Any] = {"\0answer": answers, "\0user": user_texts}
    slots |= {f"\0video{k}": [paths[k] for paths in per_row] for k in range(count)}
    layout = _conversation([f"\0video{k}" for k in range(count)], "\0answer", system_prompt, "\0user", cameras)
    items = [item for message in layout for item in message["content"]]
    content_type = arrow_type.value_type.field("content").type.value_type
    fields = []
    for field in content_type:
        values = np.empty((rows, len(items)), dtype=object)
        for k, item in enumerate(items):
            value = item[field.name]
            if isinstance(value, str) and value.startswith("\n\0"):
                values[:, k] = ["\n" + v for v in slots[value[1:]]]
            else:
                values[:, k] = slots.get(value, value)
        fields.append(pa.array(values.ravel(), type=field.type))
    content = pa.StructArray.from_arrays(fields, fields=list(content_type))
    sizes = np.tile([len(m["content"]) for m in layout], rows)
    contents = pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)), content)
    roles = pa.array(np.tile([m["role"] for m in layout], rows).astype(object), type=pa.string())
    message_type = arrow_type.value_type
    messages = pa.StructArray.from_arrays(
        [roles, contents.cast(message_type.field("content").type)], fields=list(message_type)
    )
    offsets = pa.array(np.arange(0, rows * len(layout) + 1, len(layout), dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, messages).cast(arrow_type)


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


__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "answer_format_description",
    "build_messages",
    "camera_label",
    "default_prompt",
    "history_text",
    "messages_column",
    "user_text",
]
