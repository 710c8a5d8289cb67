"""Hub -> segments chunk by chunk (download, cut, delete), on an engine."""
