"""Every supported family through the same chain, on tiny models: the rendered sample's token layout, the labels,
LoRA and full training steps, adapter save → load → merge → generate, and `pipeline evaluate`'s report.

The test clips are 1-s 128x96 at 30 fps; the default sampling (4 fps) gives 4 frames. Expected layouts, worked out
from each processor's published rules:
- Qwen3-VL / Qwen3.5: 128x96 in 16-px patches, 2x2 merge, frame pairs → 2 groups of 3x4 = 12 `<|video_pad|>`,
  each `<t seconds><|vision_start|>...<|vision_end|>` (t = mid-pair time: 0.2 s, 0.8 s);
- Qwen2.5-VL: 128x96 → 140x84 (multiples of 28), 10x6 patches of 14 px, 2x2 merge → 15 per frame pair, all 30 in
  one `<|vision_start|>...<|vision_end|>` group;
- InternVL3.5: 4 `FrameN: <img><IMG_CONTEXT>*16</img>` lines (a 112-px test tile: 8x8 patches, pixel shuffle).
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from pipeline.core.errors import PipelineError
from pipeline.model.collator import IGNORE_INDEX, SampleEncoder
from pipeline.model.families import FAMILIES, family_of, family_of_processor
from pipeline.model.inference import GenerationSettings, generate_answers
from pipeline.model.modeling import load_model_and_processor, part_of
from pipeline.stages.evaluate.report import REPORT_FILES
from pipeline.stages.evaluate.stage import EvaluateConfig
from pipeline.stages.evaluate.stage import run as evaluate_run
from pipeline.stages.train.config import TrainConfig
from pipeline.stages.train.merge import MergeConfig
from pipeline.stages.train.merge import run as merge_run
from pipeline.stages.train.trainer import load_rows, run

NAMES = list(FAMILIES)
MODEL_CLASS = {
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen3_5": "Qwen3_5ForConditionalGeneration",
    "internvl": "InternVLForConditionalGeneration",
}
IM_END = {"qwen3_vl": 151645, "qwen2_5_vl": 151645, "qwen3_5": 248046, "internvl": 151645}
QWEN3_GROUP = r"<(0\.2|0\.8) seconds><\|vision_start\|>(?:<\|video_pad\|>){12}<\|vision_end\|>"
LAYOUT = {
    "qwen3_vl": rf"<\|im_start\|>user\n{QWEN3_GROUP}{QWEN3_GROUP}The video",
    "qwen3_5": rf"<\|im_start\|>user\n{QWEN3_GROUP}{QWEN3_GROUP}The video",
    "qwen2_5_vl": r"<\|im_start\|>user\n<\|vision_start\|>(?:<\|video_pad\|>){30}<\|vision_end\|>The video",
    "internvl": r"<\|im_start\|>user\n"
    + r"\n".join(rf"Frame{i}: <img>(?:<IMG_CONTEXT>){{16}}</img>" for i in range(1, 5))
    + r"\nThe video",
}
VISUAL_TOKENS = {"qwen3_vl": 24, "qwen3_5": 24, "qwen2_5_vl": 30, "internvl": 64}


def config_for(model_dir, dataset_dir, output_dir, lora: bool, **overrides) -> TrainConfig:
    values = dict(
        model=str(model_dir),
        dataset=str(dataset_dir),
        output_dir=str(output_dir),
        lora_enable=lora,
        learning_rate=1e-2 if lora else 3e-3,
        lr_scheduler_type="constant",
        warmup_ratio=0.0,
        max_steps=2 if lora else 1,
        max_train_samples=1,
        logging_steps=1,
        save_steps=1000,
        report_to="none",
        seed=0,
    )
    return TrainConfig.from_sources(overrides=values | overrides)


@pytest.fixture(scope="module")
def encoded(request, train_dataset_dir):
    """family -> (processor, the first training row, its encoding)."""
    cache: dict = {}

    def get(family: str):
        if family not in cache:
            model_dir = request.getfixturevalue(f"tiny_{family}")
            _, processor = load_model_and_processor(model_dir)
            row = load_rows(train_dataset_dir, "train")[0]
            cache[family] = processor, row, SampleEncoder(processor).encode(row["messages"])
        return cache[family]

    return get


@pytest.mark.parametrize("family", NAMES)
def test_visual_tokens_sit_where_the_processor_puts_them(encoded, family):
    processor, _, inputs = encoded(family)
    assert family_of_processor(processor).name == family
    text = processor.tokenizer.decode(inputs["input_ids"][0])
    assert re.search(LAYOUT[family], text), text[:600]
    video_token = FAMILIES[family].video_token
    assert text.count(video_token) == VISUAL_TOKENS[family]
    # One template wrapper, never an extra outer one (the Qwen3-VL trap): starts = groups.
    if family != "internvl":
        assert text.count("<|vision_start|>") == text.count("<|vision_end|>") == (1 if family == "qwen2_5_vl" else 2)


@pytest.mark.parametrize("family", NAMES)
def test_labels_decode_to_exactly_the_answer_and_the_end_of_turn(encoded, family):
    processor, row, inputs = encoded(family)
    labelled = [t for t in inputs["labels"][0].tolist() if t != IGNORE_INDEX]
    answer = row["messages"][-1]["content"][0]["text"]
    assert processor.tokenizer.decode(labelled) == answer + "<|im_end|>"
    assert labelled[-1] == IM_END[family]
    # The labelled tokens are the sequence's last ones before the template's trailing newline.
    ids = inputs["input_ids"][0].tolist()
    first = inputs["labels"][0].tolist().index(labelled[0])
    assert ids[first : first + len(labelled)] == labelled and len(ids) - first - len(labelled) <= 1


@pytest.mark.parametrize("family", NAMES)
def test_generation_prompt_ends_where_the_answer_starts(encoded, family):
    processor, row, inputs = encoded(family)
    prompt = SampleEncoder(processor).encode(row["messages"], for_generation=True)["input_ids"][0].tolist()
    full = inputs["input_ids"][0].tolist()
    assert full[: len(prompt)] == prompt
    first_label = next(i for i, t in enumerate(inputs["labels"][0].tolist()) if t != IGNORE_INDEX)
    assert first_label == len(prompt)


@pytest.fixture(scope="module")
def lora_run(request, train_dataset_dir, tmp_path_factory):
    """family -> (base dir, LoRA output dir) after two LoRA steps."""
    cache: dict = {}

    def get(family: str):
        if family not in cache:
            base = request.getfixturevalue(f"tiny_{family}")
            out = tmp_path_factory.mktemp(f"lora_{family}")
            result = run(config_for(base, train_dataset_dir, out, lora=True))
            assert result.global_step == 2 and len(result.losses) == 2
            assert all(torch.isfinite(torch.tensor(result.losses)))
            assert result.video_tokens_per_sample == VISUAL_TOKENS[family]
            cache[family] = base, out
        return cache[family]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("family", NAMES)
def test_two_lora_steps_train_adapters_on_the_language_models_linear_layers(lora_run, family):
    base, out = lora_run(family)
    adapter = load_file(out / "adapter_model.safetensors")
    lora_b = {k: v for k, v in adapter.items() if "lora_B" in k}
    # peft initialises lora_B to zeros: any non-zero entry was learned, in every adapted layer.
    assert lora_b and all(v.abs().max() > 0 for v in lora_b.values())
    assert all(part_of(k) == "llm" for k in adapter), "adapters must stay in the language model"
    leaves = {k.split(".lora_B")[0].rsplit(".", 1)[-1] for k in lora_b}
    assert leaves == set(FAMILIES[family].lora_targets)
    targets = json.loads((out / "adapter_config.json").read_text())["target_modules"]
    assert targets and not any(part_of(t) != "llm" for t in targets)


@pytest.mark.slow
@pytest.mark.parametrize("family", NAMES)
def test_adapter_saves_loads_merges_and_generates_the_same_answer(lora_run, train_dataset_dir, tmp_path, family):
    base, out = lora_run(family)
    adapted, processor = load_model_and_processor(base, adapter=out)
    merged_dir = merge_run(MergeConfig(base=str(base), adapter=str(out), output_dir=str(tmp_path / "merged")))
    merged, merged_processor = load_model_and_processor(merged_dir)
    assert type(merged).__name__ == MODEL_CLASS[family] and not (merged_dir / "adapter_config.json").exists()
    rows = load_rows(train_dataset_dir, "test").select(range(1))
    answers = generate_answers(merged, merged_processor, rows, max_new_tokens=4)
    assert answers == generate_answers(adapted, processor, rows, max_new_tokens=4)
    assert isinstance(answers[0], str)
    # Generation stops at the family's end of turn: it is the generation config's eos.
    from pipeline.model.inference import greedy_generation_config

    assert IM_END[family] in greedy_generation_config(processor, 4).eos_token_id


@pytest.mark.slow
@pytest.mark.parametrize("family", [f for f in NAMES if f != "internvl"])  # internvl: ZeRO-2, test_deepspeed
def test_one_full_step_changes_the_language_model_only(request, train_dataset_dir, tmp_path, family):
    base = request.getfixturevalue(f"tiny_{family}")
    run(config_for(base, train_dataset_dir, tmp_path / "full", lora=False))
    before = load_file(base / "model.safetensors")
    after = load_file(tmp_path / "full" / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    llm_linear = {k for k in before if part_of(k) == "llm" and k.endswith("proj.weight")}
    assert llm_linear and llm_linear <= changed
    assert not {k for k in changed if part_of(k) != "llm"}


@pytest.mark.slow
@pytest.mark.parametrize("family", NAMES)
def test_evaluate_on_the_held_out_set_writes_a_report(request, train_dataset_dir, tmp_path, family):
    out = tmp_path / "eval"
    config = EvaluateConfig(
        dataset=train_dataset_dir,
        output_dir=out,
        model=str(request.getfixturevalue(f"tiny_{family}")),
        max_samples=2,
        batch_size=2,
        generation=GenerationSettings(max_new_tokens=4),
        device="cpu",
    )
    result = evaluate_run(config)
    assert result.n_samples == 2
    assert all((out / name).is_file() for name in REPORT_FILES)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_samples"] == 2 and IM_END[family] in metrics["generation"]["eos_token_id"]


def test_an_unknown_family_is_one_line_naming_the_supported_ones(tmp_path):
    from transformers import LlavaConfig

    with pytest.raises(PipelineError) as info:
        family_of(LlavaConfig())
    message = str(info.value)
    assert "'llava'" in message and "\n" not in message
    assert all(name in message for name in FAMILIES)
    model_dir = tmp_path / "llava"
    LlavaConfig().save_pretrained(model_dir)
    with pytest.raises(PipelineError, match=r"--model .*llava: model type 'llava' is not a supported family"):
        load_model_and_processor(model_dir)


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("lora_qwen3_vl_2b.yaml", "qwen3_vl"),
        ("lora_qwen3_5_2b.yaml", "qwen3_5"),
        ("lora_internvl3_5_1b.yaml", "internvl"),
    ],
)
def test_example_configs_spell_out_the_familys_lora_targets(name, family):
    from pathlib import Path

    config = TrainConfig.from_sources(Path(__file__).resolve().parents[2] / "configs" / name)
    assert sorted(config.lora.target_modules) == sorted(FAMILIES[family].lora_targets)


# TRAINING.md's "Model families" table: visual tokens and sequence length of a 1-s 448x252 clip at the defaults.
DOCUMENTED = {"qwen3_vl": (224, 757), "qwen2_5_vl": (288, 807), "qwen3_5": (224, 761), "internvl": (1024, 1569)}


@pytest.mark.parametrize("family", NAMES)
def test_published_processor_settings_give_the_documented_token_counts(encoded, tmp_path, family):
    import numpy as np

    from pipeline.contracts.answer import format_answer
    from pipeline.contracts.messages import DEFAULT_SYSTEM_PROMPT, build_messages, default_prompt
    from pipeline.model.collator import video_token_count
    from pipeline.standins.tiny_model import build_processor
    from tests.fixtures.model_fixtures import write_test_clip

    processor, _, _ = encoded(family)
    published = build_processor(family, processor.tokenizer, tile_size=448)  # InternVL's published tile
    clip = write_test_clip(tmp_path / "clip.mp4", seed=3, width=448, height=252)
    rng = np.random.default_rng(0)
    velocity, curvature = rng.uniform(5, 25, 30), rng.uniform(-0.02, 0.02, 30)
    answer = format_answer(velocity.astype(np.float32), curvature.astype(np.float32))
    inputs = SampleEncoder(published).encode(
        build_messages(str(clip), answer, DEFAULT_SYSTEM_PROMPT, default_prompt(30))
    )
    assert (video_token_count(published, inputs["input_ids"]), inputs["input_ids"].shape[-1]) == DOCUMENTED[family]
    assert int((inputs["labels"] != IGNORE_INDEX).sum()) == 338


def test_the_cli_refuses_an_unknown_family_in_one_line(train_dataset_dir, tmp_path):
    import subprocess
    import sys

    from transformers import LlavaConfig

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, timeout=300)

    made = cli("make-tiny-model", str(tmp_path / "m"), "--family", "llava")
    assert made.returncode == 2 and "not a supported family" in made.stderr, made.stderr
    assert len(made.stderr.strip().splitlines()) == 1 and "internvl" in made.stderr
    LlavaConfig().save_pretrained(tmp_path / "llava")
    out = str(tmp_path / "out")
    trained = cli(
        "train", "--model", str(tmp_path / "llava"), "--dataset", str(train_dataset_dir), "--output-dir", out
    )
    assert trained.returncode == 2, trained.stderr[-2000:]
    assert trained.stderr.strip().splitlines() == [trained.stderr.strip()], trained.stderr  # before any data read
    assert "model type 'llava' is not a supported family" in trained.stderr and "qwen3_5 (Qwen3.5)" in trained.stderr
    assert not (tmp_path / "m").exists() and not (tmp_path / "out" / "model.safetensors").exists()
