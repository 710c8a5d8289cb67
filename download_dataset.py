"""Download PhysicalAI-AV chunks from the Hub: the same as `pipeline download` (see `--help`)."""

from pipeline.cli.app import run_script

if __name__ == "__main__":
    run_script("download")
