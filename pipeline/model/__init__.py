"""The model layer that train, export and evaluate share: families, video input, loading, collator, loss and
generation."""
