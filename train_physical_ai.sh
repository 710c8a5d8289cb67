#!/usr/bin/env bash
# Fine-tune a Qwen-VL video model on the PhysicalAI-AV motion dataset with torchrun + DeepSpeed, on every GPU of
# this node (or of several nodes). Full fine-tuning by default; train_physical_ai_lora.sh is the LoRA variant.
#
# Environment (defaults in brackets):
#   MODEL             Hub id or local model directory            [Qwen/Qwen3-VL-2B-Instruct]
#   DATASET           dataset directory from `pipeline build-dataset`  [qwen_video_dataset]
#   OUTPUT_DIR        where checkpoints and the final model go    [runs/physical_ai_full]
#   DEEPSPEED_CONFIG  DeepSpeed JSON, or "none" for plain DDP      [configs/zero3.json]
#   (with --config FILE, these four come from the file unless given in the environment or as flags)
#   NPROC_PER_NODE    processes on this node                      [GPUs seen by nvidia-smi -L, else 1 CPU process]
#   NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT   multi-node rendezvous  [1, 0, 127.0.0.1, 29500]
#   TORCHRUN          the torchrun command                        [.venv/bin/torchrun beside this script, else uv run]
#   LOG_DIR           if set, torchrun writes one log per rank there
# Every argument is passed on to `pipeline train` (later flags win), e.g.
#   ./train_physical_ai.sh --max-steps 200 --video-max-frames 8
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() {
    echo "error: $*" >&2
    exit 2
}

# Which inputs the user gave (environment or flags), as opposed to this script's defaults.
given_model="${MODEL:+x}"
given_dataset="${DATASET:+x}"
given_output="${OUTPUT_DIR:+x}"
given_deepspeed="${DEEPSPEED_CONFIG:+x}"
MODEL="${MODEL:-Qwen/Qwen3-VL-2B-Instruct}"
DATASET="${DATASET:-qwen_video_dataset}"
# train_physical_ai_lora.sh sets its own defaults for these two through DEFAULT_*.
OUTPUT_DIR="${OUTPUT_DIR:-${DEFAULT_OUTPUT_DIR:-runs/physical_ai_full}}"
DEEPSPEED_CONFIG="${DEEPSPEED_CONFIG:-${DEFAULT_DEEPSPEED_CONFIG:-$ROOT/configs/zero3.json}}"
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
[[ "$NNODES" =~ ^[1-9][0-9]*$ ]] || die "NNODES must be a positive integer, got '$NNODES'"
if [[ "$NNODES" -gt 1 && -z "${MASTER_ADDR:-}" ]]; then
    die "MASTER_ADDR must be set to node 0's address when NNODES=$NNODES"
fi
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29500}"

# Flags given on the command line override the environment; read them back so the checks below see the real values.
config_file=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    a="${args[i]}"
    next="${args[i + 1]:-}"
    case "$a" in
        --model) MODEL="$next" given_model=x ;;
        --model=*) MODEL="${a#*=}" given_model=x ;;
        --dataset) DATASET="$next" given_dataset=x ;;
        --dataset=*) DATASET="${a#*=}" given_dataset=x ;;
        --output-dir | --output_dir) given_output=x ;;
        --output-dir=* | --output_dir=*) given_output=x ;;
        --deepspeed) DEEPSPEED_CONFIG="$next" given_deepspeed=x ;;
        --deepspeed=*) DEEPSPEED_CONFIG="${a#*=}" given_deepspeed=x ;;
        --config) config_file="$next" ;;
        --config=*) config_file="${a#*=}" ;;
    esac
done
# With --config FILE, the file's model/dataset/output_dir/deepspeed count: only values the user gave are passed on
# (command-line flags win over the file) and checked here; `pipeline train` checks the file's own.
uses() { [[ -z "$config_file" || -n "$1" ]]; }

# Fail before torchrun starts (and before minutes of imports) when an input is missing.
if [[ -n "$config_file" && ! -f "$config_file" ]]; then
    die "config file not found: --config $config_file"
fi
if uses "$given_dataset" && [[ ! -d "$DATASET" ]]; then
    die "dataset directory not found: DATASET=$DATASET (build it with \`pipeline build-dataset\`)"
fi
# A Hub id is "org/name"; anything else (absolute, ./, ../, ~, deeper paths) or an existing path is a local model.
if uses "$given_model" && { [[ ! "$MODEL" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || [[ -e "$MODEL" ]]; }; then
    [[ -d "$MODEL" ]] || die "model directory not found: MODEL=$MODEL (a local path must exist; a Hub id is org/name)"
fi
if [[ "$DEEPSPEED_CONFIG" == "none" ]]; then
    DEEPSPEED_CONFIG=""
elif uses "$given_deepspeed" && [[ ! -f "$DEEPSPEED_CONFIG" ]]; then
    die "DeepSpeed config not found: DEEPSPEED_CONFIG=$DEEPSPEED_CONFIG"
fi

# One process per visible GPU; without a GPU, one CPU process (gloo). CUDA_VISIBLE_DEVICES narrows the count.
gpus=0
if command -v nvidia-smi > /dev/null 2>&1; then
    gpus="$(nvidia-smi -L 2> /dev/null | grep -c '^GPU' || true)"
fi
if [[ -n "${CUDA_VISIBLE_DEVICES+x}" && "$gpus" -gt 0 ]]; then
    IFS=',' read -r -a visible <<< "$CUDA_VISIBLE_DEVICES"
    gpus="${#visible[@]}"
fi
NPROC_PER_NODE="${NPROC_PER_NODE:-$((gpus > 0 ? gpus : 1))}"
[[ "$NPROC_PER_NODE" =~ ^[1-9][0-9]*$ ]] || die "NPROC_PER_NODE must be a positive integer, got '$NPROC_PER_NODE'"

# Without a GPU nothing else is needed: `pipeline train` then sets TrainingArguments(use_cpu=True), so accelerate
# joins the ranks over gloo, with or without DeepSpeed. (Do not export ACCELERATE_USE_CPU=true: accelerate then
# turns DeepSpeed off.)

if [[ -n "${TORCHRUN:-}" ]]; then
    read -r -a torchrun <<< "$TORCHRUN"
elif [[ -x "$ROOT/.venv/bin/torchrun" ]]; then
    torchrun=("$ROOT/.venv/bin/torchrun")
else
    torchrun=(uv run --project "$ROOT" torchrun)
fi

launch=(--nnodes "$NNODES" --node-rank "$NODE_RANK" --nproc-per-node "$NPROC_PER_NODE"
    --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT")
if [[ -n "${LOG_DIR:-}" ]]; then
    launch+=(--log-dir "$LOG_DIR" --tee 3)
fi

train=()
uses "$given_model" && train+=(--model "$MODEL")
uses "$given_dataset" && train+=(--dataset "$DATASET")
uses "$given_output" && train+=(--output-dir "$OUTPUT_DIR")
if [[ -n "$DEEPSPEED_CONFIG" ]] && uses "$given_deepspeed"; then
    train+=(--deepspeed "$DEEPSPEED_CONFIG")
fi
# Full fine-tuning unless a later --lora-enable (train_physical_ai_lora.sh) turns LoRA on: the last flag wins.
train+=(--no-lora-enable)

ds="${DEEPSPEED_CONFIG:-off}"
uses "$given_deepspeed" || ds="from $config_file"
echo "torchrun: $NNODES node(s) x $NPROC_PER_NODE process(es), GPUs here: $gpus, DeepSpeed: $ds" >&2
exec "${torchrun[@]}" "${launch[@]}" -m pipeline train "${train[@]}" "$@"
