"""The hermetic end-to-end demo and its profiles."""
