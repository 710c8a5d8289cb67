"""How clips and chunks run: a local process pool or Ray tasks (`config.make_engine`)."""
