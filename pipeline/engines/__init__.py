"""How clips and chunks run: a local process pool or Ray tasks (`config.make_engine`)."""

# Extra attempts of a failed chunk download, or of a job whose worker died (`--retries`' default). Here, not in
# `config` or `base`, so that the CLI's `EngineConfig` loads neither engine code nor `config`'s lazy engine imports.
DEFAULT_RETRIES = 2
