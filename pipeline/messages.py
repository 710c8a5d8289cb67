"""The conversation format of a dataset row: system prompt, user prompt (optionally after the input second's
motion), the Qwen-VL message list, and the answer format as `dataset_meta.json` records it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.answer import CURVATURE_SCALE, DECIMALS, format_answer

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


__all__ = ["DEFAULT_SYSTEM_PROMPT", "answer_format_description", "build_messages", "default_prompt", "history_text"]
