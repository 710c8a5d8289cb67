"""A tiny random-init InternVL3.5 (`InternVLForConditionalGeneration`) and its processor, as transformers'
InternVL conversion writes the `OpenGVLab/InternVL3_5-*-HF` checkpoints.

InternVL3.5's language model is Qwen3 with the Qwen vocabulary; after Qwen3's `</think>` (151668) come InternVL's
image tokens, so `<img>` is 151669, `</img>` 151670 and `<IMG_CONTEXT>` 151671 (the config's `image_token_id`),
then `<quad>`...`</box>`, and the `<video>` placeholder of the chat template last (151678). The video processor
resizes every frame to one square tile (448 px in the checkpoints, ImageNet mean/std) and the processor writes
`FrameN: <img><IMG_CONTEXT>*image_seq_length</img>` per frame; `image_seq_length` = (tile / 14)^2 / 4 after the
pixel shuffle (256 at 448 px). The image processor tiles still images (crop_to_patches, 1-12 tiles); videos are
never tiled.
"""

from __future__ import annotations

from typing import Any

# InternViT's patch side, px, and the pixel-shuffle ratio of the projector (InternVL3.5's published settings).
PATCH_SIZE = 14
DOWNSAMPLE_RATIO = 0.5
# InternVL's added tokens after Qwen3's, in id order.
IMAGE_TOKENS = (
    "<img>",
    "</img>",
    "<IMG_CONTEXT>",
    "<quad>",
    "</quad>",
    "<ref>",
    "</ref>",
    "<box>",
    "</box>",
    "<video>",
)
# The tokenizer attributes InternVLProcessor reads (`tokenizer.start_image_token`, ...).
TOKENIZER_ROLES = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def image_seq_length(tile_size: int) -> int:
    """Language-model tokens per tile: (tile / patch)^2 patches, pixel-shuffled by DOWNSAMPLE_RATIO."""
    return int((tile_size // PATCH_SIZE) ** 2 * DOWNSAMPLE_RATIO**2)


def build_processor(tokenizer: Any, template: str, tile_size: int = 448) -> Any:
    """InternVLProcessor with the checkpoints' image processor (tiles of `tile_size`, 1-12 per image), video
    processor (one `tile_size` tile per frame) and chat template."""
    from transformers import GotOcr2ImageProcessor, InternVLProcessor, InternVLVideoProcessor

    tile = {"height": tile_size, "width": tile_size}
    image_processor = GotOcr2ImageProcessor(
        size=tile,
        crop_to_patches=True,
        min_patches=1,
        max_patches=12,
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )
    video_processor = InternVLVideoProcessor(size=tile, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)
    return InternVLProcessor(
        image_processor=image_processor,
        video_processor=video_processor,
        tokenizer=tokenizer,
        image_seq_length=image_seq_length(tile_size),
        chat_template=template,
    )


def build_model(config: Any) -> Any:
    """A random-init InternVLForConditionalGeneration shaped by a `TinyModelConfig`: a Qwen3 decoder and an
    InternViT of `vision_depth` blocks over `tile_size` tiles (float32)."""
    import transformers

    text = {
        "model_type": "qwen3",
        **config.decoder_sizes(),
        "head_dim": config.head_dim,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
        "tie_word_embeddings": True,
        "bos_token_id": config.token_id("<|endoftext|>"),
        "eos_token_id": config.token_id("<|im_end|>"),
        "initializer_range": config.hidden_size**-0.5,
    }
    vision = transformers.InternVLVisionConfig(
        hidden_size=config.vision_hidden_size,
        num_hidden_layers=config.vision_depth,
        num_attention_heads=config.vision_heads,
        intermediate_size=2 * config.vision_hidden_size,
        image_size=config.tile_size,
        patch_size=PATCH_SIZE,
        attention_bias=True,
        norm_type="layer_norm",
        initializer_range=config.vision_hidden_size**-0.5,
    )
    model_config = transformers.InternVLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=config.token_id("<IMG_CONTEXT>"),
        image_seq_length=image_seq_length(config.tile_size),
        downsample_ratio=DOWNSAMPLE_RATIO,
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=True,
    )
    return transformers.InternVLForConditionalGeneration(model_config)


__all__ = ["IMAGE_TOKENS", "PATCH_SIZE", "TOKENIZER_ROLES", "build_model", "build_processor", "image_seq_length"]
