"""The conversation format of a dataset row: system prompt, user prompt (optionally after the input second's
motion), the Qwen-VL message list, and the answer format as `dataset_meta.json` records it.
"""

from __future__ import annotations

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


def build_messages(
    video: str, answer: str, system_prompt: str, prompt: str, history: str | None = None
) -> list[dict[str, Any]]:
    """The Qwen-VL conversation of one row: system text, user (video, then the prompt text), assistant answer."""
    return _conversation(video, answer, system_prompt, user_text(prompt, history))


def _conversation(video: str, answer: str, system_prompt: str, user: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": [{"type": "text", "text": system_prompt, "video": None}]},
        {
            "role": "user",
            "content": [
                {"type": "video", "text": None, "video": video},
                {"type": "text", "text": user, "video": None},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": answer, "video": None}]},
    ]


def messages_column(
    videos: list[str], answers: list[str], system_prompt: str, user_texts: list[str], arrow_type: Any
) -> Any:
    """`build_messages` of many rows as one Arrow array of `arrow_type` (the dataset's `messages` type), assembled
    column-wise from the same conversation layout (for speed on large batches)."""
    import pyarrow as pa

    rows = len(videos)
    slots = {"\0video": videos, "\0answer": answers, "\0user": user_texts}
    layout = _conversation("\0video", "\0answer", system_prompt, "\0user")
    items = [item for message in layout for item in message["content"]]
    content_type = arrow_type.value_type.field("content").type.value_type
    fields = []
    for field in content_type:
        values = np.empty((rows, len(items)), dtype=object)
        for k, item in enumerate(items):
            value = item[field.name]
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
    "default_prompt",
    "history_text",
    "messages_column",
    "user_text",
]
