"""Shared pytest setup. Fixtures live in tests/fixtures/, one module per stage, and build on each other:
synthetic repository → local Hub server → segments → HF dataset → tiny models.
"""

import os

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = [
    "tests.fixtures.synthetic_fixtures",
    "tests.fixtures.hub_fixtures",
    "tests.fixtures.segment_fixtures",
    "tests.fixtures.prepare_fixtures",
    "tests.fixtures.dataset_fixtures",
    "tests.fixtures.model_fixtures",
]
