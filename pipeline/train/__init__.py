"""Stage 4: fine-tune Qwen-VL video models on the motion dataset.

Modules: `tiny_model` (random-init Qwen-VL builder with the real vocabulary), `video_input` (PyAV decode + frame
sampling), `collator` (chat template → ids, labels, batches), `modeling` (load, freeze, LoRA), `config`
(`TrainConfig`), `trainer` (`run`), `inference` (`generate_answers`), `merge` (LoRA → full weights).
Heavy imports (torch, transformers, peft) happen inside functions, so importing this package stays cheap.
"""
