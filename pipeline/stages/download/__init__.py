"""Stage 1: dataset chunks from the Hub."""
