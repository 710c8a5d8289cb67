"""What differs between the video VLM families, in one place: how a clip is handed to the processor, how the
answer is found, which Linear layers get LoRA by default, and which token ends a turn.

A model's family is read from its config (`model_type`); a model of any other family is refused with one line
naming the supported ones. Module names follow transformers 5.x: Qwen2.5-VL, Qwen3-VL and Qwen3.5 (`visual`,
`visual.merger`, Qwen3-VL's `visual.deepstack_merger_list`) and InternVL (`vision_tower`, `multi_modal_projector`).

Answer span (every family): the last occurrence of the answer's characters in the rendered chat template, then
the end-of-turn token (`collator.answer_labels`). Templates that open a thinking block before the answer
(Qwen3.5) work unchanged, since the span is found by characters, not by the generation prompt's token ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.core.errors import PipelineError

# Leaf names of the vision tower's root module.
VISION_MODULE_NAMES = ("visual", "vision_tower", "vision_model")
# Leaf names of the projector into the language model. Qwen3-VL's `deepstack_merger_list` is a ModuleList (one
# merger per deepstack layer): peft's `modules_to_save` takes its members, not the list.
PROJECTOR_MODULE_NAMES = ("merger", "deepstack_merger_list", "multi_modal_projector")
# Linear layers of a Qwen2/Qwen3/Llama-style decoder block: attention then MLP.
DECODER_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Qwen3.5's hybrid decoder adds the Gated DeltaNet (linear attention) projections of its linear-attention layers.
GATED_DELTANET_LINEARS = ("in_proj_qkv", "in_proj_z", "in_proj_b", "in_proj_a", "out_proj")
# Linear layers of the Qwen2.5-VL / Qwen3-VL / Qwen3.5 vision blocks (used only with --tune-mm-vision).
QWEN_VISION_LINEARS = ("qkv", "proj", "gate_proj", "up_proj", "down_proj", "linear_fc1", "linear_fc2")
# InternViT blocks: attention projections, its output projection, the MLP.
INTERNVIT_LINEARS = ("q_proj", "k_proj", "v_proj", "projection_layer", "fc1", "fc2")

# How a video processor is given the per-frame pixel budget (`VideoSettings.max_pixels`/`min_pixels`):
# "per_frame" (Qwen2-VL's video processor), "per_clip" (Qwen3-VL's budgets t*h*w over the whole clip), or "tile"
# (InternVL: every frame is resized to one fixed tile, so no budget applies).
PixelBudget = Literal["per_frame", "per_clip", "tile"]
# Qwen3.5's special tokens start at 248044 (`<|endoftext|>`), in Qwen's order: `<|im_end|>` is the third.
QWEN3_5_SPECIAL_BASE = 248044
QWEN3_5_IM_END = QWEN3_5_SPECIAL_BASE + 2


@dataclass(frozen=True)
class Family:
    """One video VLM family as this tool drives it."""

    name: str  # our name (`--family`, configs): qwen3_vl, qwen2_5_vl, qwen3_5, internvl
    label: str  # human name in messages and docs
    model_types: tuple[str, ...]  # transformers `config.model_type` values of the family
    processor_class: str  # transformers processor class of the published checkpoints
    lora_targets: tuple[str, ...]  # default LoRA targets: leaf names of the language model's Linear layers
    vision_lora_targets: tuple[str, ...]  # added with --tune-mm-vision
    # Frames per temporal patch: Qwen merges frame pairs, so a clip's frame count is rounded up to a multiple.
    frame_multiple: int = 2
    # The template wraps the video pad in <|vision_start|>...<|vision_end|> but the processor writes its own
    # per-frame groups: collapse the wrapper to the bare pad (Qwen3-VL's layout; see collator's docstring).
    collapse_video_wrapper: bool = False
    end_of_turn: str = "<|im_end|>"  # token that ends an assistant turn (the answer's last labelled token)
    video_token: str = "<|video_pad|>"  # token that carries one visual feature of a video
    template_kwargs: dict[str, Any] = field(default_factory=dict)  # extra chat-template variables


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            name="qwen3_vl",
            label="Qwen3-VL",
            model_types=("qwen3_vl",),
            processor_class="Qwen3VLProcessor",
            lora_targets=DECODER_LINEARS,
            vision_lora_targets=QWEN_VISION_LINEARS,
            collapse_video_wrapper=True,
        ),
        Family(
            name="qwen2_5_vl",
            label="Qwen2.5-VL",
            model_types=("qwen2_5_vl",),
            processor_class="Qwen2_5_VLProcessor",
            lora_targets=DECODER_LINEARS,
            vision_lora_targets=QWEN_VISION_LINEARS,
        ),
        Family(
            name="qwen3_5",
            label="Qwen3.5",
            model_types=("qwen3_5",),
            processor_class="Qwen3VLProcessor",
            lora_targets=DECODER_LINEARS + GATED_DELTANET_LINEARS,
            vision_lora_targets=QWEN_VISION_LINEARS,
            collapse_video_wrapper=True,
            # Qwen3.5 4B and larger think by default (0.8B, 2B do not): the answer follows an empty thinking block in
            # training and in serving (every request's chat_template_kwargs).
            template_kwargs={"enable_thinking": False},
        ),
        Family(
            name="internvl",
            label="InternVL3.5",
            model_types=("internvl",),
            processor_class="InternVLProcessor",
            lora_targets=DECODER_LINEARS,
            vision_lora_targets=INTERNVIT_LINEARS,
            frame_multiple=1,
            video_token="<IMG_CONTEXT>",  # the frames are images to InternVL
        ),
    )
}


def supported() -> str:
    """The supported families, for messages: `qwen3_vl (Qwen3-VL), ...`."""
    return ", ".join(f"{f.name} ({f.label})" for f in FAMILIES.values())


def family_named(name: str) -> Family:
    """The family called `name` (`--family`). Raises PipelineError naming the supported ones."""
    if name not in FAMILIES:
        raise PipelineError(f"--family {name!r}: not a supported family; supported: {supported()}")
    return FAMILIES[name]


def family_of(config: Any) -> Family:
    """The family of a model config (a transformers `PretrainedConfig` or its dict), by `model_type`.

    Raises:
        PipelineError: one line naming the model type and the supported families.
    """
    model_type = config.get("model_type") if isinstance(config, dict) else getattr(config, "model_type", None)
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    raise PipelineError(f"model type {model_type!r} is not a supported family; supported: {supported()}")


def family_of_processor(processor: Any) -> Family:
    """The family of a processor, for callers that have no model config (the processor's class; Qwen3-VL and
    Qwen3.5 share a processor class and differ in where their special tokens sit: Qwen3.5's `<|im_end|>` is 248046).
    """
    name = type(processor).__name__
    candidates = [f for f in FAMILIES.values() if f.processor_class == name]
    if not candidates:
        raise PipelineError(f"processor {name}: not a supported family's processor; supported: {supported()}")
    if len(candidates) > 1:
        im_end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
        return FAMILIES["qwen3_5"] if im_end == QWEN3_5_IM_END else FAMILIES["qwen3_vl"]
    return candidates[0]


def pixel_budget_of(video_processor: Any) -> PixelBudget:
    """How a video processor takes the per-frame pixel budget (see `PixelBudget`), by its class: InternVL's "tile",
    Qwen3-VL's (also Qwen3.5's) "per_clip", Qwen2-VL's (Qwen2.5-VL's) "per_frame"."""
    name = type(video_processor).__name__
    if name.startswith("InternVL"):
        return "tile"
    return "per_clip" if name.startswith("Qwen3") else "per_frame"


__all__ = [
    "DECODER_LINEARS",
    "FAMILIES",
    "Family",
    "PROJECTOR_MODULE_NAMES",
    "QWEN3_5_SPECIAL_BASE",
    "VISION_MODULE_NAMES",
    "family_named",
    "family_of",
    "family_of_processor",
    "pixel_budget_of",
    "supported",
]
