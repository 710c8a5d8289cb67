"""What differs between the video VLM families, in one place (module names, tokens), for the code that splits a
model into parts, attaches LoRA and labels answers.

Names follow transformers 5.x: Qwen2.5-VL and Qwen3-VL (`visual`, `visual.merger`, Qwen3-VL's
`visual.deepstack_merger_list`), and the generic LLaVA-style names (`vision_tower`, `multi_modal_projector`). A new
family adds its names here.
"""

from __future__ import annotations

# Leaf names of the vision tower's root module.
VISION_MODULE_NAMES = ("visual", "vision_tower", "vision_model")
# Leaf names of the projector into the language model. Qwen3-VL's `deepstack_merger_list` is a ModuleList (one
# merger per deepstack layer): peft's `modules_to_save` takes its members, not the list.
PROJECTOR_MODULE_NAMES = ("merger", "deepstack_merger_list", "multi_modal_projector")
# Linear layers of a Qwen/Llama-style decoder block: attention then MLP.
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Linear layers of the Qwen2.5-VL / Qwen3-VL vision blocks (used only with --tune-mm-vision).
VISION_LORA_TARGETS = ("qkv", "proj", "gate_proj", "up_proj", "down_proj", "linear_fc1", "linear_fc2")
# Tokens that end an assistant turn, first match wins (Qwen's ChatML); else the tokenizer's eos token.
END_OF_TURN_TOKENS = ("<|im_end|>",)

__all__ = [
    "DEFAULT_LORA_TARGETS",
    "END_OF_TURN_TOKENS",
    "PROJECTOR_MODULE_NAMES",
    "VISION_LORA_TARGETS",
    "VISION_MODULE_NAMES",
]
