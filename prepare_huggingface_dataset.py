"""Build the train/test Hugging Face dataset from segments.json (same as `pipeline build-dataset`)."""

from pipeline.cli.app import run_script

if __name__ == "__main__":
    run_script("build-dataset")
