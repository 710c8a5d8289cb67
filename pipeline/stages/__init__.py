"""One package per stage. Each holds `config` (light to import: the CLI reads it) and `stage` (`run`). A stage reaches
another only through `pipeline.contracts`; `prepare` is the one that combines stages."""
