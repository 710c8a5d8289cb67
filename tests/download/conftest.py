"""TEMPORARY stand-ins for tests/fixtures/synthetic_fixtures.py until it lands (same names, real generator)."""

import pytest

from pipeline.synthetic.repo import SynthConfig, write_repo


@pytest.fixture(scope="session")
def synthetic_repo(tmp_path_factory):
    return write_repo(SynthConfig(output_dir=tmp_path_factory.mktemp("synth") / "repo", n_chunks=2, clips_per_chunk=3))


@pytest.fixture(scope="session")
def make_synthetic_repo():
    def _make(tmp_path, **overrides):
        overrides.setdefault("output_dir", tmp_path / "repo")
        return write_repo(SynthConfig(**overrides))

    return _make
