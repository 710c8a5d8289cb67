"""Encode the first row of an ms-swift export with ms-swift's own template (run in ms-swift's environment).

Usage: python swift_encode.py MODEL_DIR MODEL_TYPE TRAIN_JSONL OUT_JSON. The video variables come from the
environment, as `train.sh` of the export sets them. Writes {"input_ids", "labels", "video_grid_thw"}.
"""

import json
import sys

from swift import get_processor, get_template


def main(model_dir: str, model_type: str, jsonl: str, out: str) -> None:
    processor = get_processor(model_dir, model_type=model_type)
    template = get_template(processor)
    template.set_mode("train")
    with open(jsonl, encoding="utf-8") as f:
        row = json.loads(f.readline())
    encoded = template.encode(row)
    result = {
        "input_ids": [int(t) for t in encoded["input_ids"]],
        "labels": [int(t) for t in encoded["labels"]],
        "video_grid_thw": encoded["video_grid_thw"].tolist(),
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:5])
