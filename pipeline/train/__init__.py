"""Stage 4: fine-tune video VLMs (Qwen3-VL, Qwen2.5-VL, Qwen3.5, InternVL3.5) on the motion dataset.

Modules: `families` (what differs per model family), `video_input` (a segment's frames for the model: PyAV
decode + frame sampling), `collator` (chat template → ids, labels, batches), `modeling` (load, freeze, LoRA),
`config` (`TrainConfig`, the run's config file and `read_run_config`), `trainer` (`run`), `inference`
(`generate_answers`), `merge` (LoRA → full weights).
Heavy imports (torch, transformers, peft) happen inside functions, so importing this package stays cheap.
"""
