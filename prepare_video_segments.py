"""Cut downloaded videos into 1-second segments with next-second targets: the same as `pipeline segment`."""

from pipeline.cli.app import run_script

if __name__ == "__main__":
    run_script("segment")
