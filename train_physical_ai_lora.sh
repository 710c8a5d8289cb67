#!/usr/bin/env bash
# LoRA fine-tuning of a Qwen-VL video model on the PhysicalAI-AV motion dataset: train_physical_ai.sh with
# `--lora-enable`, ZeRO-2 and its own output directory. Same environment variables (defaults in brackets):
#   MODEL [Qwen/Qwen3-VL-2B-Instruct]  DATASET [qwen_video_dataset]  OUTPUT_DIR [runs/physical_ai_lora]
#   DEEPSPEED_CONFIG [configs/zero2.json, "none" for plain DDP]  NPROC_PER_NODE [GPU count, else 1 CPU process]
#   NNODES NODE_RANK MASTER_ADDR MASTER_PORT [1 0 127.0.0.1 29500]  TORCHRUN  LOG_DIR
# Every argument is passed on to `pipeline train`, e.g.
#   ./train_physical_ai_lora.sh --lora-r 16 --lora-alpha 32 --max-steps 500
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export DEFAULT_OUTPUT_DIR="runs/physical_ai_lora" DEFAULT_DEEPSPEED_CONFIG="$ROOT/configs/zero2.json"
exec "$ROOT/train_physical_ai.sh" --lora-enable "$@"
