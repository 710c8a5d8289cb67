"""Load a video VLM + processor (AutoModelForImageTextToText / AutoProcessor), split it into parts, attach LoRA.

Parts (module names per family in `pipeline.model.families`):
- `vision`: the vision tower (`visual`, `vision_tower`, `vision_model`) minus its projector;
- `mlp`: the projector into the language model (Qwen `visual.merger` + Qwen3-VL `deepstack_merger_list`, or
  `multi_modal_projector`);
- `llm`: everything else (language model, embeddings, lm_head).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.contracts.run_config import LoraSettings
from pipeline.core.errors import PipelineError, first_line
from pipeline.model.families import PROJECTOR_MODULE_NAMES, VISION_MODULE_NAMES, family_of

log = logging.getLogger(__name__)


def part_of(name: str) -> str:
    """`vision`, `mlp` or `llm` for a parameter or module name."""
    parts = name.split(".")
    if any(p in PROJECTOR_MODULE_NAMES for p in parts):
        return "mlp"
    if any(p in VISION_MODULE_NAMES for p in parts):
        return "vision"
    return "llm"


def resolve_dtype(dtype: str | None) -> Any:
    import torch

    table = {
        None: None,
        "auto": "auto",
        "float32": torch.float32,
        "bfloat16": torch.bfloat16,
        "float16": torch.float16,
    }
    if dtype not in table:
        raise PipelineError(f"dtype: {dtype!r} is not one of float32, bfloat16, float16, auto")
    return table[dtype]


def load_model_and_processor(
    model_id_or_path: str | Path,
    adapter: str | Path | None = None,
    dtype: str | None = None,
    for_training: bool = False,
) -> tuple[Any, Any]:
    """(model, processor) from a local directory or a Hub id (honours HF_HUB_OFFLINE), plus an optional adapter.

    The processor is read from `adapter` when it holds one (a training output), else from the base model.
    With `for_training=False` the model is put in eval mode.

    Raises:
        PipelineError: the model, processor or adapter cannot be loaded (one line).
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    source = str(model_id_or_path)
    looks_local = Path(source).is_absolute() or source.startswith((".", "~")) or source.count("/") > 1
    if looks_local and not Path(source).expanduser().is_dir():
        raise PipelineError(f"--model {source}: no such model directory")
    check_family(source)
    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype"] = resolve_dtype(dtype)
    try:
        model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        first = first_line(err)
        raise PipelineError(f"--model {source}: cannot load the model ({first})") from None
    processor_source = source
    if adapter is not None:
        adapter_dir = Path(adapter)
        if not (adapter_dir / "adapter_config.json").is_file():
            raise PipelineError(f"--adapter {adapter_dir}: no adapter_config.json (not a LoRA training output)")
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=for_training)
        if any((adapter_dir / f).is_file() for f in ("processor_config.json", "tokenizer_config.json")):
            processor_source = str(adapter_dir)
    try:
        processor = AutoProcessor.from_pretrained(processor_source)
    except (OSError, ValueError, KeyError) as err:
        first = first_line(err)
        raise PipelineError(f"--model {processor_source}: cannot load the processor ({first})") from None
    if not for_training:
        model.eval()
    return model, processor


def check_family(source: str) -> None:
    """Refuse a model of an unsupported family from its config alone, before any weight is read.

    Raises:
        PipelineError: `--model SOURCE: model type 'x' is not a supported family; supported: ...` (one line).
    """
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError, KeyError) as err:
        first = first_line(err)
        raise PipelineError(f"--model {source}: cannot read the model config ({first})") from None
    try:
        family_of(config)
    except PipelineError as err:
        raise PipelineError(f"--model {source}: {err}") from None


def numel(param: Any) -> int:
    """Elements of a parameter, also under DeepSpeed ZeRO-3 (whose partitioned parameters report 0 locally)."""
    return int(getattr(param, "ds_numel", 0) or param.numel())


def set_trainable_parts(model: Any, tune_llm: bool, tune_vision: bool, tune_mlp: bool) -> dict[str, int]:
    """Full fine-tuning: requires_grad per part. Returns trainable parameter counts per part."""
    wanted = {"llm": tune_llm, "vision": tune_vision, "mlp": tune_mlp}
    counts = {"llm": 0, "vision": 0, "mlp": 0}
    for name, param in model.named_parameters():
        part = part_of(name)
        param.requires_grad_(wanted[part])
        if wanted[part]:
            counts[part] += numel(param)
    if not any(counts.values()):
        raise PipelineError("--tune-mm-llm/--tune-mm-vision/--tune-mm-mlp: nothing left to train")
    return counts


def lora_target_names(model: Any, targets: tuple[str, ...], tune_vision: bool) -> list[str]:
    """Full names of the Linear layers to adapt: leaf name in `targets`, in the llm part (and vision if asked)."""
    import torch

    parts = {"llm", "vision"} if tune_vision else {"llm"}
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and name.rsplit(".", 1)[-1] in targets
        and part_of(name) in parts
        and not name.endswith("lm_head")
    ]
    if not names:
        raise PipelineError(f"--lora-target-modules: no Linear layer named {', '.join(targets)} in the model")
    return names


def projector_module_names(model: Any) -> list[str]:
    """Full names of the projector's modules, for peft `modules_to_save`: a module list or dict (Qwen3-VL's
    `deepstack_merger_list`) is expanded into its members, since peft wraps only modules that compute."""
    import torch

    names: list[str] = []
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] not in PROJECTOR_MODULE_NAMES:
            continue
        if isinstance(module, (torch.nn.ModuleList, torch.nn.ModuleDict)):
            names += [f"{name}.{child}" for child, _ in module.named_children()]
        else:
            names.append(name)
    return sorted(names)


def apply_lora(model: Any, settings: LoraSettings, tune_vision: bool = False, tune_mlp: bool = False) -> Any:
    """Wrap `model` in a peft LoRA model: adapters on the language model's Linear layers (`settings.target_modules`,
    else the family's `lora_targets`), and on the vision blocks with `tune_vision`; with `tune_mlp` the projector
    is trained in full and saved with the adapter. Everything else is frozen."""
    from peft import LoraConfig, get_peft_model

    family = family_of(model.config)
    targets = tuple(settings.target_modules) or family.lora_targets
    if tune_vision:
        targets = tuple(dict.fromkeys(targets + family.vision_lora_targets))
    names = lora_target_names(model, targets, tune_vision)
    modules_to_save = projector_module_names(model) if tune_mlp else None
    if tune_mlp and not modules_to_save:
        raise PipelineError(f"--tune-mm-mlp: no projector module ({', '.join(PROJECTOR_MODULE_NAMES)}) in the model")
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=names,
        modules_to_save=modules_to_save or None,
        task_type="CAUSAL_LM",
    )
    log.info("LoRA on %d Linear layers (r=%d, alpha=%d)", len(names), settings.r, settings.alpha)
    return get_peft_model(model, config)


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(numel(p) for p in model.parameters() if p.requires_grad)
    total = sum(numel(p) for p in model.parameters())
    return trainable, total


__all__ = [
    "LoraSettings",
    "apply_lora",
    "check_family",
    "count_parameters",
    "load_model_and_processor",
    "numel",
    "lora_target_names",
    "part_of",
    "projector_module_names",
    "set_trainable_parts",
]
