"""Stage 3: the train/test HF dataset in Qwen-VL conversation format."""
