#!/usr/bin/env bash
# GPU smoke test with real weights: for each model, LoRA training (bf16, gradient checkpointing), evaluation at
# batch 4 and 1 on the same held-out samples, merge-lora, and evaluation of the merged model, on a synthetic
# dataset from `pipeline synth` (no Hub dataset access). Weights are downloaded first and timed separately.
# Prints the layout line of each run and one summary table at the end. TRAINING.md (GPU smoke test) explains it.
#
#   benchmarks/gpu_smoke.sh [--dry-run] [--work-dir DIR] [--models "ID ID"] [--steps N] [--eval-samples N]
#
# --dry-run: CPU only, a tiny random-init model instead of the real ones, tiny data and few steps (what the test
# suite runs). Exit code: 0 when every check passed, 1 when a check failed, 2 on bad arguments.
set -euo pipefail

cd "$(dirname "$0")/.."
DRY_RUN=0
WORK_DIR=runs/gpu_smoke
MODELS="Qwen/Qwen3-VL-2B-Instruct Qwen/Qwen2.5-VL-3B-Instruct"
STEPS=20
EVAL_SAMPLES=16
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --work-dir) WORK_DIR="$2"; shift ;;
    --models) MODELS="$2"; shift ;;
    --steps) STEPS="$2"; shift ;;
    --eval-samples) EVAL_SAMPLES="$2"; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "error: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

PIPELINE=(uv run --no-sync pipeline)
if [ "$DRY_RUN" = 1 ]; then
  # A tiny model, a tiny dataset, CPU: exercises every step of the script in a few minutes.
  MODELS="$WORK_DIR/tiny_qwen3_vl"
  STEPS=4
  LEARNING_RATE=1e-2
  EVAL_SAMPLES=2
  SYNTH=(--chunks 1 --clips-per-chunk 3 --size 256x144 --duration 3)
  SEGMENT=(--size 128x72)
  TRAIN_PRECISION=()
  MAX_NEW_TOKENS=8
  BATCH=2
  MERGE_DTYPE=float32
  EVAL_DTYPE=(--dtype float32 --device cpu)
else
  uv sync --locked --quiet
  nvidia-smi -L
  SYNTH=(--chunks 1 --clips-per-chunk 6 --size 896x504)
  SEGMENT=(--size 448x252 --workers 8)
  TRAIN_PRECISION=(--bf16)
  LEARNING_RATE=1e-4
  MAX_NEW_TOKENS=400
  BATCH=4
  MERGE_DTYPE=bfloat16
  EVAL_DTYPE=(--dtype bfloat16 --device cuda)
fi
mkdir -p "$WORK_DIR"
TIMES="$WORK_DIR/times.tsv"
: > "$TIMES"

# timed NAME CMD...: runs CMD, appends "NAME<TAB>seconds" to times.tsv, stops the script if CMD fails.
timed() {
  local name="$1"; shift
  local start end
  start=$(date +%s%N)
  "$@"
  end=$(date +%s%N)
  awk -v n="$name" -v ns="$((end - start))" 'BEGIN { printf "%s\t%.1f\n", n, ns / 1e9 }' >> "$TIMES"
}

echo "== weights"
if [ "$DRY_RUN" = 1 ]; then
  timed weights "${PIPELINE[@]}" make-tiny-model "$WORK_DIR/tiny_qwen3_vl" --family qwen3_vl --bpe-ranks 1024 \
    --hidden-size 32 --layers 2 --vision-depth 2 --overwrite
else
  for model in $MODELS; do
    timed "weights $model" uv run --no-sync python -c \
      "import sys; from huggingface_hub import snapshot_download; print(snapshot_download(sys.argv[1]))" "$model"
  done
  export HF_HUB_OFFLINE=1
fi

echo "== data (pipeline synth -> segment -> build-dataset)"
DATA="$WORK_DIR/data"
# Split by clip, as the demo does: a few synthetic clips make one or two drives, whose clips share only their
# data-collection row, not their motion; a drive split would leave a side empty.
timed data bash -c "
  set -e
  ${PIPELINE[*]} synth --output-dir $DATA/repo ${SYNTH[*]} --no-frame-code --force
  ${PIPELINE[*]} segment --input-dir $DATA/repo --output-dir $DATA/segments ${SEGMENT[*]}
  ${PIPELINE[*]} build-dataset --segments-path $DATA/segments/metadata/segments.parquet --output-dir $DATA/dataset \
    --split-by clip --test-ratio 0.34 --overwrite
"

for model in $MODELS; do
  name=$(basename "$model")
  run="$WORK_DIR/$name"
  echo "== $model: LoRA, $STEPS steps"
  timed "train $name" "${PIPELINE[@]}" train --model "$model" --dataset "$DATA/dataset" --output-dir "$run/lora" \
    --overwrite --lora-enable --max-steps "$STEPS" --per-device-train-batch-size "$BATCH" \
    --gradient-checkpointing "${TRAIN_PRECISION[@]}" --learning-rate "$LEARNING_RATE" --warmup-ratio 0 --logging-steps 1 \
    --save-steps 100000 --report-to none 2>&1 | tee "$run.train.log" | grep -E "first sample:|parameter dtypes:"
  for batch in "$BATCH" 1; do
    echo "== $model: evaluate $EVAL_SAMPLES samples at batch $batch"
    timed "evaluate $name batch $batch" "${PIPELINE[@]}" evaluate --model "$model" --adapter "$run/lora" \
      --dataset "$DATA/dataset" --output-dir "$run/eval_b$batch" --max-samples "$EVAL_SAMPLES" \
      --batch-size "$batch" --max-new-tokens "$MAX_NEW_TOKENS" --save-predictions "${EVAL_DTYPE[@]}" > /dev/null
  done
  echo "== $model: merge, evaluate the merged model"
  timed "merge $name" "${PIPELINE[@]}" merge-lora --base "$model" --adapter "$run/lora" --output-dir "$run/merged" \
    --dtype "$MERGE_DTYPE" --overwrite > /dev/null
  timed "evaluate merged $name" "${PIPELINE[@]}" evaluate --model "$run/merged" --dataset "$DATA/dataset" \
    --output-dir "$run/eval_merged" --max-samples "$EVAL_SAMPLES" --batch-size "$BATCH" \
    --max-new-tokens "$MAX_NEW_TOKENS" --save-predictions "${EVAL_DTYPE[@]}" > /dev/null
done

echo "== summary"
uv run --no-sync python - "$WORK_DIR" "$BATCH" $MODELS <<'PY'
import json
import math
import sys
from pathlib import Path

work, batch, models = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
times = dict(line.split("\t") for line in (work / "times.tsv").read_text().splitlines())


def answers(path: Path) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]


def parse_rate(eval_dir: Path) -> float:
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    return 1.0 - metrics["parse_failures"] / metrics["n_samples"]


ok = True
rows = []
for model in models:
    name = Path(model).name
    run = work / name
    summary = json.loads((run / "lora" / "run_summary.json").read_text())
    losses = summary["losses"]
    k = max(1, len(losses) // 4)
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    finite_falling = all(math.isfinite(x) for x in losses) and last < first
    layout = next(
        (line.split("first sample: ", 1)[1] for line in (work / f"{name}.train.log").read_text().splitlines()
         if "first sample: " in line),
        "?",
    )
    samples_s = summary["global_step"] * batch / summary["seconds"] if summary["seconds"] else float("nan")
    batched, single = answers(run / f"eval_b{batch}" / "predictions.jsonl"), answers(run / "eval_b1" / "predictions.jsonl")
    merged = answers(run / "eval_merged" / "predictions.jsonl")
    same = sum(a == b for a, b in zip(batched, single, strict=True))
    same_merged = sum(a == b for a, b in zip(batched, merged, strict=True))
    ok &= finite_falling and same == len(batched)
    peak = summary.get("peak_gpu_memory_gb")
    rows.append([
        name,
        f"{first:.3f} -> {last:.3f} {'ok' if finite_falling else 'FAIL'}",
        f"{samples_s:.2f}",
        f"{peak:.1f}" if peak is not None else "-",
        f"{same}/{len(batched)}",
        f"{parse_rate(run / f'eval_b{batch}'):.0%} / {parse_rate(run / 'eval_b1'):.0%}",
        f"{parse_rate(run / 'eval_merged'):.0%}, {same_merged}/{len(merged)} as adapter",
        times[f"train {name}"],
    ])
    print(f"{name} layout: {layout}")
head = ["model", "loss (first -> last quarter)", "samples/s", "peak GPU GB", f"answers b{batch} = b1",
        f"parse rate b{batch} / b1", "merged: parse, same answers", "train s"]
table = [head, *rows]
widths = [max(len(str(r[i])) for r in table) for i in range(len(head))]
for i, r in enumerate(table):
    print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
    if i == 0:
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
print("seconds per step: " + ", ".join(f"{k} {v}" for k, v in times.items()))
print("smoke: PASS" if ok else "smoke: FAIL")
sys.exit(0 if ok else 1)
PY
