"""Top layer: the typer app (`app`) and the CLI's console. Commands import their stage when they run."""
