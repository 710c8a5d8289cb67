"""benchmarks/device_check.py: the CPU dry run produces every figure, finite, with no network; the shape files
build the published models' sizes; device_bundle.sh refuses a folder of 60 MiB or more."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.model_fixtures import write_test_dataset

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "benchmarks" / "device_check.py"
BUNDLE_SCRIPT = REPO / "benchmarks" / "device_bundle.sh"


def load_check():
    spec = importlib.util.spec_from_file_location("device_check", CHECK)
    module = importlib.util.module_from_spec(spec)
    sys.modules["device_check"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_network(monkeypatch):
    """Any IP connection fails the test (Unix sockets stay allowed: DataLoader workers use them)."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f"device check tried to reach {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return attempts


@pytest.mark.slow  # ~45 s of CPU; over 60 s of wall time when the 2 cores are shared
def test_dry_run_produces_every_figure_finite_without_network(tmp_path, no_network, monkeypatch):
    bundle = write_test_dataset(tmp_path / "bundle", n_train=3, n_test=2).parent
    monkeypatch.delenv("OUT", raising=False)
    check = load_check()

    assert check.main(["--dry-run", "--bundle", str(bundle), "--out", str(tmp_path / "out")]) == 0

    result = json.loads((tmp_path / "out" / check.RESULT_FILE).read_text())
    settings = check.dry_run_settings()
    models = len(settings.shapes)
    per_model = len(settings.modes) * len(settings.checkpointing) * len(settings.batches)
    assert len(result["train"]) == models * per_model
    assert all(t["status"] == "ok" for t in result["train"])
    assert [r["workers"] for r in result["loader"]] == list(settings.loader_workers)
    assert len(result["generation"]) == models * len(settings.generation_batches)
    figures = check.figures_of(result)
    assert len(figures) >= models * per_model * 9 + len(settings.loader_workers)
    assert [name for name, value in figures if not math.isfinite(value)] == []
    assert result["not_finite"] == []
    assert all(value >= 0 for _, value in figures)
    assert min(t["mfu"] for t in result["train"]) > 0
    assert result["feeding"]["gpu_samples_s"] > 0
    assert no_network == []
    table = check.report(result)
    assert "MFU" in table and "hours for 580,000 samples" in table and "loader workers" in table


def test_device_check_reaches_nothing_outside():
    """No Hub download, no package index, no `uv sync`; wheels are installed with --no-index only."""
    source = CHECK.read_text(encoding="utf-8")
    for forbidden in ("snapshot_download", "hf_hub_download", "uv sync", "from_pretrained", "urlopen", "requests"):
        assert forbidden not in source, forbidden
    assert "--no-index" in source
    assert 'os.environ.setdefault("HF_HUB_OFFLINE", "1")' in source
    # The pipeline modules it imports: none downloads either.
    imported = set(re.findall(r"from (pipeline\.[\w.]+) import", source))
    assert imported, "expected imports of the model layer"
    for module in imported:
        text = (REPO / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8")
        assert "snapshot_download" not in text and "hf_hub_download" not in text, module


@pytest.mark.parametrize(("file_name", "billions"), [("qwen3_vl_2b.json", 2.128), ("qwen2_5_vl_3b.json", 3.755)])
def test_real_shapes_build_the_published_sizes(file_name, billions):
    import torch
    from transformers import AutoModelForImageTextToText

    check = load_check()
    shapes = check.Shapes.read(file_name)
    assert shapes.source and "huggingface.co/" + shapes.name in shapes.source
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(shapes.model_config(), dtype=torch.bfloat16)
    assert sum(p.numel() for p in model.parameters()) / 1e9 == pytest.approx(billions, abs=0.001)
    assert model.config.get_text_config().vocab_size == 151936


def test_bundle_size_check_refuses_60_mib(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    small.mkdir(), large.mkdir()
    (small / "a.bin").write_bytes(b"x" * 1024)
    with open(large / "a.bin", "wb") as f:
        f.truncate(60 * 1048576)
    assert subprocess.run([str(BUNDLE_SCRIPT), "--check-size", str(small)], capture_output=True).returncode == 0
    refused = subprocess.run([str(BUNDLE_SCRIPT), "--check-size", str(large)], capture_output=True, text=True)
    assert refused.returncode == 1 and "60 MiB" in refused.stderr
