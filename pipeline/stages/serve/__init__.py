"""Stage `serve-model`: start a serving engine for a training run with the flags that keep prompts and frames
identical to training (`stage.engine_command`)."""
