"""JSONL exports of a built dataset for other trainers."""
