"""Shared pytest setup. Fixtures live in tests/fixtures/, one module per stage, and build on each other:
synthetic repository → local Hub server → segments → HF dataset → tiny models.
"""

import os

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The tests start only local Ray clusters: keep them on 127.0.0.1 even when a module imports ray early
# (`pipeline.engines.ray_engine` sets the same switch before it imports ray for a cluster it starts).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

pytest_plugins = [
    "tests.fixtures.synthetic_fixtures",
    "tests.fixtures.hub_fixtures",
    "tests.fixtures.segment_fixtures",
    "tests.fixtures.prepare_fixtures",
    "tests.fixtures.dataset_fixtures",
    "tests.fixtures.model_fixtures",
    "tests.fixtures.filesystem_fixtures",
]
