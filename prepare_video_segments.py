"""Cut the downloaded videos into 1-second segments with next-second targets (same as `pipeline segment`)."""

from pipeline.cli import run_script

run_script("segment")
