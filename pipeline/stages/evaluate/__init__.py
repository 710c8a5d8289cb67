"""Stage 5: numeric error on held-out clips against baselines, with a report."""
