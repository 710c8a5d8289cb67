"""Export the dataset as training JSONL for qwen-vl-finetune, LLaMA-Factory and ms-swift (= `pipeline export`)."""

from pipeline.cli.app import run_script

if __name__ == "__main__":
    run_script("export")
