"""Stage 4: LoRA or full fine-tuning (transformers Trainer, peft, DeepSpeed)."""
