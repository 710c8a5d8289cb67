"""Answers asked of an OpenAI-compatible server (`--server`; the requests themselves are `serving_client`'s)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.core.progress import ProgressSink
from pipeline.stages.evaluate.answers import Answers
from pipeline.stages.evaluate.config import EvaluateConfig
from pipeline.stages.evaluate.parity import check_parity
from pipeline.stages.evaluate.resolved_run import ResolvedRun
from pipeline.stages.evaluate.serving_client import answer_max_tokens, check_server, server_answers, whole_clip_rows

if TYPE_CHECKING:
    import datasets


@dataclass
class Server:
    """The answer source of `--server`: about `max_samples` rows in whole clips spread over the split, or all."""

    config: EvaluateConfig
    # The training run whose settings and processor set the frames sent (`resolved_run.resolve_run`).
    run: ResolvedRun
    # The model name the server answers to (`serving_client.check_server`).
    served_model: str

    @classmethod
    def connect(cls, config: EvaluateConfig, run: ResolvedRun) -> Server:
        """Ask the server which model it serves: a server that is down stops the run here, before any work.

        Raises:
            PipelineError: as `serving_client.check_server` (one line).
        """
        assert config.server is not None
        return cls(config, run, check_server(config.server))

    def answers(self, split: datasets.Dataset, n_pairs: int, progress: ProgressSink) -> Answers:
        """The server's answers ("" for a recorded failure; k sampled ones each with --num-samples k > 1) and its
        summary; answers of an earlier run in the output directory are kept and not asked again."""
        config = self.config
        assert config.server is not None and self.run.run_dir is not None and self.run.video_settings is not None
        rows = split
        if config.max_samples is not None:
            rows = split.select(whole_clip_rows([str(c) for c in split["clip_id"]], config.max_samples))
        max_tokens = min(config.generation.max_new_tokens, answer_max_tokens(n_pairs))
        texts, samples, info = server_answers(
            config.server,
            rows,
            self.run.run_dir,
            self.run.video_settings,
            config.output_dir,
            max_tokens,
            self.served_model,
            progress,
            preflight=check_parity,
            samples=config.num_samples,
        )
        return Answers(rows, texts, server=info, samples=samples)


__all__ = ["Server"]
