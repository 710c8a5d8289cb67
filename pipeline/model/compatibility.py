"""Is an adapter or a checkpoint made for this base model? Checked from config files and the adapter's weight
header before any weight is loaded, so that `merge-lora`, `evaluate --adapter` and `train
--resume-from-checkpoint` refuse a mismatch in one line instead of merging it or failing with a traceback.

Compared: the family, the architecture and the sizes (text and vision) of the adapter's recorded base
(`base_model_name_or_path` of adapter_config.json, when it is a local dir or in the Hub cache) or of a full
checkpoint's config.json; then every adapter weight's shape against the base's layer on the meta device (no memory).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError, first_line
from pipeline.model.families import FAMILIES

TEXT_SIZES = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
TEXT_SIZES += ("vocab_size",)
VISION_SIZES = ("hidden_size", "intermediate_size", "depth", "num_hidden_layers", "num_heads", "out_hidden_size")
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_PEFT_PREFIX = "base_model.model."


def signature(config: dict[str, Any]) -> dict[str, Any]:
    """What a model is, from its config dict: family, architecture, then text and vision sizes."""
    model_type = config.get("model_type")
    family = next((f.name for f in FAMILIES.values() if model_type in f.model_types), model_type)
    out: dict[str, Any] = {"family": family, "architecture": (config.get("architectures") or [None])[0]}
    text = config.get("text_config") or config
    vision = config.get("vision_config") or {}
    out |= {f"text {k}": text[k] for k in TEXT_SIZES if text.get(k) is not None}
    out |= {f"vision {k}": vision[k] for k in VISION_SIZES if vision.get(k) is not None}
    return out


def differences(have: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """`key a vs b` for every key both signatures hold with different values."""
    return [
        f"{k} {have[k]} vs {want[k]}"
        for k in have
        if k in want and None not in (have[k], want[k]) and have[k] != want[k]
    ]


def _config(source: str, flag: str) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source)
    except (OSError, ValueError, KeyError) as err:
        raise PipelineError(f"{flag} {source}: cannot read the model config ({first_line(err)})") from None


def _local_config_dir(name: str | None) -> str | None:
    """The recorded base's config location without the network: a local dir, or the Hub cache's copy; else None."""
    if not name:
        return None
    if (Path(name).expanduser() / "config.json").is_file():
        return str(Path(name).expanduser())
    if Path(name).is_absolute() or name.count("/") != 1:
        return None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    return str(Path(cached).parent) if isinstance(cached, str) else None


def _safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape, from a safetensors file's JSON header alone."""
    try:
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
    except (OSError, ValueError, struct.error) as err:
        raise PipelineError(f"{path}: unreadable adapter weights ({first_line(err)})") from None
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}


def _shape_problem(base_config: Any, shapes: dict[str, list[int]]) -> str | None:
    """The first adapter weight without a place of its shape in the base (built on the meta device), or None."""
    import torch
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(base_config)
    modules = dict(model.named_modules())
    params = {name: list(p.shape) for name, p in model.named_parameters()}
    for key, shape in sorted(shapes.items()):
        name = key.removeprefix(_PEFT_PREFIX)
        layer, _, kind = name.rpartition(".lora_")
        if not layer:
            if name in params and params[name] != shape:
                return f"{name}: shape {shape} vs {params[name]}"
            continue
        module = modules.get(layer)
        if module is None or not hasattr(module, "in_features"):
            return f"layer {layer} is not in the model"
        side, expected = (1, module.in_features) if kind.startswith("A") else (0, module.out_features)
        if len(shape) != 2 or shape[side] != expected:
            return f"{layer}: adapter shape {shape} does not fit {module.in_features} -> {module.out_features}"
    return None


def check_adapter(adapter: str | Path, base: str, flag: str = "--adapter", base_flag: str = "--model") -> None:
    """Refuse an adapter made for another base than `base` (family, architecture, sizes, weight shapes).

    Raises:
        PipelineError: `FLAG ADAPTER does not match BASE_FLAG BASE: ...` (one line), or an unreadable config.
    """
    adapter_dir = Path(adapter)
    try:
        recorded = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PipelineError(f"{flag} {adapter}: unreadable adapter_config.json ({first_line(err)})") from None
    base_config = _config(base, base_flag)
    problem = None
    recorded_base = _local_config_dir(recorded.get("base_model_name_or_path") if isinstance(recorded, dict) else None)
    if recorded_base is not None:
        diff = differences(signature(_config(recorded_base, flag).to_dict()), signature(base_config.to_dict()))
        problem = f"made for {recorded_base} ({'; '.join(diff)})" if diff else None
    weights = adapter_dir / ADAPTER_WEIGHTS
    if problem is None and weights.is_file():
        problem = _shape_problem(base_config, _safetensors_shapes(weights))
    if problem is not None:
        raise PipelineError(f"{flag} {adapter} does not match {base_flag} {base}: {problem}")


def check_checkpoint(checkpoint: str | Path, base: str, flag: str = "--resume-from-checkpoint") -> None:
    """Refuse a training checkpoint (a LoRA adapter or full weights) of another model than `base`.

    Raises:
        PipelineError: `FLAG CHECKPOINT does not match --model BASE: ...` (one line).
    """
    path = Path(checkpoint)
    if (path / "adapter_config.json").is_file():
        check_adapter(path, base, flag=flag)
    elif (path / "config.json").is_file():
        diff = differences(
            signature(_config(str(path), flag).to_dict()), signature(_config(base, "--model").to_dict())
        )
        if diff:
            raise PipelineError(f"{flag} {checkpoint} does not match --model {base}: " + "; ".join(diff))


__all__ = ["check_adapter", "check_checkpoint", "differences", "signature"]
