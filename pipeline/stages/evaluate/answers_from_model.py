"""Answers generated in-process: batched greedy generation with the training stage's loader and generation loop
(`pipeline.model.modeling`, `pipeline.model.inference`)."""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.contracts.run_config import VideoSettings
from pipeline.core.errors import PipelineError, first_line
from pipeline.core.progress import ProgressSink
from pipeline.stages.evaluate.answers import Answers
from pipeline.stages.evaluate.config import EvaluateConfig

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    """Resolve `device`: "auto" is "cuda" when a CUDA GPU is visible, else "cpu"; an explicit CUDA device must exist.

    Raises:
        PipelineError: CUDA was asked for but is not available.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PipelineError(f"--device {device}: no CUDA GPU is available (use --device cpu)")
    return device


def load_checked(model_id: str, adapter: Path | None, dtype: str | None = None) -> tuple[Any, Any]:
    """`load_model_and_processor` for inference, with an adapter that does not fit the model made a `PipelineError`.

    The adapter's base is compared with the model first (`pipeline.model.compatibility`). PEFT raises on shape
    mismatches but only warns when adapter weights have no place in the model (another
    architecture or depth); both are refused here.

    Raises:
        PipelineError: the model, processor or adapter cannot be loaded, or the adapter does not match (one line).
    """
    from pipeline.model.compatibility import check_adapter
    from pipeline.model.modeling import load_model_and_processor

    if adapter is not None and (Path(adapter) / "adapter_config.json").is_file():
        check_adapter(adapter, model_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model, processor = load_model_and_processor(model_id, adapter=adapter, dtype=dtype)
        except PipelineError:
            raise
        except (ValueError, RuntimeError, KeyError, OSError) as err:
            if adapter is None:
                raise PipelineError(f"--model {model_id}: cannot load ({first_line(err)})") from None
            raise PipelineError(f"--adapter {adapter} does not match --model {model_id} ({first_line(err)})") from None
    for warning in caught:
        message = str(warning.message)
        if adapter is not None and "missing adapter keys" in message:
            raise PipelineError(f"--adapter {adapter} does not match --model {model_id} (adapter weights missing)")
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return model, processor


@dataclass
class InProcessModel:
    """The answer source of `--model` (and `--adapter`): the first `max_samples` rows of the split, generated here."""

    config: EvaluateConfig
    # The resolved video input and where its values came from (`resolved_run.resolve_run`).
    video_settings: VideoSettings
    video_settings_source: str | None

    def answers(self, split: datasets.Dataset, n_pairs: int, progress: ProgressSink) -> Answers:
        """Greedy answers (k sampled ones with --num-samples k > 1) and the generation settings used
        (`pipeline.model.inference.generation_record`).

        A row whose video cannot be read gets "" (logged by the generator) and so counts as a parse failure.

        Raises:
            PipelineError: no such CUDA device; the model or adapter cannot be loaded or do not match.
        """
        from pipeline.model.inference import generate_answers, generation_record, greedy_generation_config

        config = self.config
        rows = split if config.max_samples is None else split.select(range(min(config.max_samples, len(split))))
        device = resolve_device(config.device)
        model, processor = load_checked(config.model, config.adapter, dtype=config.dtype)
        model.to(device)
        log.info("generating on %s", device)
        log.info("video settings %s, read from %s", asdict(self.video_settings), self.video_settings_source)
        generation = greedy_generation_config(processor, config.generation.max_new_tokens, model.generation_config)
        if config.num_samples > 1:
            generation.do_sample = True  # the run's other settings kept: temperature, top_p, top_k

        def generate() -> list[str]:
            return generate_answers(
                model,
                processor,
                rows,
                video_settings=self.video_settings,
                batch_size=config.batch_size,
                progress=progress,
                generation_config=generation,
            )

        if config.num_samples == 1:
            return Answers(rows, generate(), generation=generation_record(generation))
        samples = [list(answers) for answers in zip(*(generate() for _ in range(config.num_samples)), strict=True)]
        texts = [answers[0] for answers in samples]
        return Answers(rows, texts, generation=generation_record(generation), samples=samples)


__all__ = ["InProcessModel", "load_checked", "resolve_device"]
