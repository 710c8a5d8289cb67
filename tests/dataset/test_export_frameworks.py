"""Exports encoded by the frameworks' own code give the model the frames, pixels and labels that we do.

Each framework runs in an isolated environment that uv resolves for it (`uv run --isolated --no-project --with
...`): its own transformers, never our lock. The first run downloads the frameworks from PyPI; later runs use uv's
cache. An exported row of a 448x252 segment is encoded by the framework (with the settings of the export's
ready-to-run file) and by our `SampleEncoder`, and the two are compared token by token.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.model_fixtures import write_test_clip, write_test_dataset

ENCODERS = Path(__file__).parent / "framework_encoders"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# The framework environments (pinned; torchvision pairs with the torch they resolve).
SWIFT_ENV = ("ms-swift==4.6.0", "qwen-vl-utils==0.0.14", "decord==0.6.0", "torchvision==0.29.2")
LLAMA_FACTORY_ENV = ("llamafactory==0.9.5", "torchvision==0.29.2", "av")
SEGMENT_WIDTH, SEGMENT_HEIGHT = 448, 252

pytestmark = [pytest.mark.slow, pytest.mark.frameworks]


def _run_isolated(packages: tuple[str, ...], script: str, args: list[str], env: dict[str, str]) -> None:
    uv = shutil.which("uv")
    assert uv, "uv is needed to build the frameworks' environments"
    command = [uv, "run", "--isolated", "--no-project", "--python", PYTHON]
    for package in packages:
        command += ["--with", package]
    command += ["python", str(ENCODERS / script), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, f"{script} failed:\n{done.stderr[-4000:]}"


def _framework_env(tmp: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    env |= {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf_home"), "TOKENIZERS_PARALLELISM": "false"}
    return env | (extra or {})


def _script_exports(script: Path) -> dict[str, str]:
    """The `export NAME=VALUE` lines of a shell script."""
    found = re.findall(r"^export (\w+)=(.*)$", script.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {name: shlex.split(value)[0] for name, value in found}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_qwen3_vl):
    """(dataset dir, export dir) of one train and one test row whose segments are 448x252, 30 frames at 30 fps."""
    from pipeline.contracts.dataset_reader import load_split
    from pipeline.stages.export.stage import ExportConfig, run

    root = tmp_path_factory.mktemp("frameworks")
    dataset_dir = write_test_dataset(root, n_train=1, n_test=1)
    for split in ("train", "test"):
        for row in load_split(dataset_dir, split):
            write_test_clip(Path(row["video"]), seed=7, width=SEGMENT_WIDTH, height=SEGMENT_HEIGHT)
    run(ExportConfig(dataset=dataset_dir, output_dir=root / "exports", model=str(tiny_qwen3_vl)))
    return dataset_dir, root / "exports"


@pytest.fixture(scope="module")
def ours(exported, tiny_qwen3_vl):
    """Our `SampleEncoder`'s ids, labels and grid for the first train row, with `pipeline train`'s settings."""
    from transformers import AutoProcessor

    from pipeline.contracts.dataset_reader import load_split
    from pipeline.contracts.run_config import VideoSettings
    from pipeline.model.collator import SampleEncoder

    processor = AutoProcessor.from_pretrained(tiny_qwen3_vl)
    row = load_split(exported[0], "train")[0]
    encoded = SampleEncoder(processor, VideoSettings()).encode(row["messages"])
    return {
        "input_ids": encoded["input_ids"][0].tolist(),
        "labels": encoded["labels"][0].tolist(),
        "video_grid_thw": encoded["video_grid_thw"].tolist(),
        "processor": processor,
    }


def _labelled_text(processor, encoded: dict) -> str:
    ids = [t for t, label in zip(encoded["input_ids"], encoded["labels"], strict=True) if label != -100]
    return processor.tokenizer.decode(ids)


def test_ms_swift_encodes_our_frames_and_labels(exported, ours, tiny_qwen3_vl, tmp_path):
    """ms-swift with the export's train.sh variables: our token sequence, plus only its outer vision pair."""
    folder = exported[1] / "ms-swift"
    env = _framework_env(tmp_path, _script_exports(folder / "train.sh"))
    out = tmp_path / "swift.json"
    args = [str(tiny_qwen3_vl), "qwen3_vl", str(folder / "train.jsonl"), str(out)]
    _run_isolated(SWIFT_ENV, "swift_encode.py", args, env)
    theirs = json.loads(out.read_text(encoding="utf-8"))

    processor = ours["processor"]
    assert theirs["video_grid_thw"] == ours["video_grid_thw"] == [[2, 16, 28]]
    video = processor.video_token_id
    assert theirs["input_ids"].count(video) == ours["input_ids"].count(video) == 224
    # The documented difference: the chat template's <|vision_start|>...<|vision_end|> stays around the groups.
    start = processor.tokenizer.convert_tokens_to_ids(processor.vision_start_token)
    end = processor.tokenizer.convert_tokens_to_ids(processor.vision_end_token)
    ids = list(theirs["input_ids"])
    assert ids.count(start) == ours["input_ids"].count(start) + 1
    del ids[ids.index(start)]
    del ids[len(ids) - 1 - ids[::-1].index(end)]
    assert ids == ours["input_ids"]
    assert _labelled_text(processor, theirs) == _labelled_text(processor, ours) + "\n"
    assert _labelled_text(processor, ours).endswith("<|im_end|>")


def test_llama_factory_encodes_our_grid_and_labels(exported, ours, tiny_qwen3_vl, tmp_path):
    """LLaMA-Factory with the export's train_lora.yaml: our grid, video tokens, prompt and labels."""
    folder = exported[1] / "llama-factory"
    out = tmp_path / "llama_factory.json"
    args = [str(folder / "train_lora.yaml"), str(tiny_qwen3_vl), str(tmp_path / "lf_output"), str(out)]
    _run_isolated(LLAMA_FACTORY_ENV, "llama_factory_encode.py", args, _framework_env(tmp_path))
    theirs = json.loads(out.read_text(encoding="utf-8"))

    processor = ours["processor"]
    assert theirs["video_grid_thw"] == ours["video_grid_thw"] == [[2, 16, 28]]
    video = processor.video_token_id
    assert theirs["input_ids"].count(video) == ours["input_ids"].count(video) == 224
    assert _labelled_text(processor, theirs) == _labelled_text(processor, ours) + "\n"
    # The documented difference: it truncates the sampled frame indices where we round them, which moves the
    # timestamp of the first frame pair. Everything else of the sequence is ours.
    ours_text, their_text = (processor.tokenizer.decode(e["input_ids"]) for e in (ours, theirs))
    expected = ours_text
    for ours_stamp, their_stamp in zip(_stamps(np.round), _stamps(np.trunc), strict=True):
        expected = expected.replace(ours_stamp, their_stamp, 1) if ours_stamp != their_stamp else expected
    assert ours_text != their_text
    assert their_text == expected


def _stamps(to_int) -> list[str]:
    """Qwen3-VL's `<t seconds>` texts of a 30-frame 30 fps clip sampled at 4 frames with `to_int` indices."""
    indices = to_int(np.linspace(0, 29, 4))
    return [f"<{(indices[i] + indices[i + 1]) / 2 / 30:.1f} seconds>" for i in range(0, len(indices), 2)]
