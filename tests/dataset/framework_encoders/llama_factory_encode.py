"""Encode the first row of a LLaMA-Factory export with LLaMA-Factory's own data code (run in its environment).

Usage: python llama_factory_encode.py TRAIN_YAML MODEL_DIR OUTPUT_DIR OUT_JSON. The YAML is the export's
`train_lora.yaml`; the model and output directory are replaced by the test's. Writes {"input_ids", "labels",
"video_grid_thw"}.
"""

import json
import sys

import yaml
from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
from llamafactory.hparams import get_train_args
from llamafactory.model import load_tokenizer


def main(train_yaml: str, model_dir: str, output_dir: str, out: str) -> None:
    with open(train_yaml, encoding="utf-8") as f:
        args = yaml.safe_load(f)
    args |= {"model_name_or_path": model_dir, "output_dir": output_dir, "bf16": False, "report_to": "none"}
    args.pop("eval_dataset", None)
    model_args, data_args, training_args, _, _ = get_train_args(args)
    tokenizer_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    dataset = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
    row = dataset["train_dataset"][0]
    mm_inputs = template.mm_plugin.get_mm_inputs(
        [], row["videos"], [], [0], [len(row["videos"])], [0], [row["input_ids"]], tokenizer_module["processor"]
    )
    result = {
        "input_ids": [int(t) for t in row["input_ids"]],
        "labels": [int(t) for t in row["labels"]],
        "video_grid_thw": mm_inputs["video_grid_thw"].tolist(),
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:5])
