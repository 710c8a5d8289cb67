"""Bottom layer: errors, atomic writes, the settings adapter (dataclass -> CLI), progress sinks. Imports no other
layer."""
