"""Real training runs of the tiny models through `pipeline.stages.train.trainer` (the `pipeline train` code path).

Per family, LoRA and full: the loss is finite and falls by at least half on one repeated sample; trained
parameters changed and frozen ones did not (compared with the base checkpoint on disk); the saved result reloads
through `load_model_and_processor` and gives the trained model's logits.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file

from pipeline.core.errors import PipelineError
from pipeline.model.inference import GenerationSettings
from pipeline.model.modeling import load_model_and_processor, part_of
from pipeline.stages.train.config import TrainConfig
from pipeline.stages.train.merge import MergeConfig
from pipeline.stages.train.merge import run as merge_run
from pipeline.stages.train.run_dir import check_output_dir
from pipeline.stages.train.trainer import CONFIG_FILE, SUMMARY_FILE, finish, prepare, run

# Optimizer steps of the overfit runs and their learning rates (measured: the loss halves after ~6 steps).
OVERFIT_STEPS = 8
LR = {"lora": 1e-2, "full": 3e-3}


def overfit_config(model_dir, dataset_dir, output_dir, mode: str, **overrides) -> TrainConfig:
    values = dict(
        model=str(model_dir),
        dataset=str(dataset_dir),
        output_dir=str(output_dir),
        lora_enable=mode == "lora",
        lora_r=16,
        lora_alpha=32,
        learning_rate=LR[mode],
        lr_scheduler_type="constant",
        warmup_ratio=0.0,
        max_steps=OVERFIT_STEPS,
        max_train_samples=1,
        logging_steps=1,
        save_steps=1000,
        report_to="none",
        seed=0,
    )
    values.update(overrides)
    return TrainConfig.from_sources(overrides=values)


def logits_of(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


@pytest.fixture(scope="module")
def trained(request, tiny_qwen3_vl, tiny_qwen2_5_vl, train_dataset_dir, tmp_path_factory):
    """Runs each (family, mode) once; returns a function giving its artefacts."""
    cache: dict = {}
    models = {"qwen3_vl": tiny_qwen3_vl, "qwen2_5_vl": tiny_qwen2_5_vl}

    def get(family: str, mode: str) -> dict:
        if (family, mode) not in cache:
            out = tmp_path_factory.mktemp(f"run_{family}_{mode}")
            config = overfit_config(models[family], train_dataset_dir, out, mode)
            prepared = prepare(config)
            output = prepared.trainer.train()
            batch = prepared.trainer.data_collator([prepared.trainer.train_dataset[0]])
            trained_logits = logits_of(prepared.trainer.model, batch)
            result = finish(prepared, output, 0.0)
            cache[(family, mode)] = {
                "out": out,
                "base": models[family],
                "result": result,
                "batch": batch,
                "logits": trained_logits,
            }
        return cache[(family, mode)]

    return get


CASES = [(f, m) for f in ("qwen3_vl", "qwen2_5_vl") for m in ("lora", "full")]


@pytest.mark.slow
@pytest.mark.parametrize(("family", "mode"), CASES)
def test_loss_is_finite_and_halves_on_a_repeated_sample(trained, family, mode):
    result = trained(family, mode)["result"]
    losses = result.losses
    assert len(losses) == OVERFIT_STEPS
    assert all(torch.isfinite(torch.tensor(losses)))
    # The first logged loss is the untrained model's (computed before the first update): about ln(vocab) or more.
    assert losses[0] > 9.0
    assert min(losses[-3:]) <= losses[0] / 2, losses
    assert result.global_step == OVERFIT_STEPS


@pytest.mark.slow
@pytest.mark.parametrize(("family", "mode"), CASES)
def test_saved_result_reloads_with_identical_logits(trained, family, mode):
    art = trained(family, mode)
    out = art["out"]
    if mode == "lora":
        assert (out / "adapter_config.json").is_file()
        model, processor = load_model_and_processor(art["base"], adapter=out)
    else:
        assert (out / "model.safetensors").is_file()
        model, processor = load_model_and_processor(out)
    assert processor.tokenizer.convert_tokens_to_ids("<|video_pad|>") == 151656
    torch.testing.assert_close(logits_of(model, art["batch"]), art["logits"], rtol=0, atol=1e-5)
    config = json.loads((out / CONFIG_FILE).read_text())
    assert config["lora"]["enable"] == (mode == "lora")
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["global_step"] == OVERFIT_STEPS
    assert summary["video_tokens_per_sample"] == {"qwen3_vl": 24, "qwen2_5_vl": 30}[family]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_lora_trains_adapters_only(trained, family):
    art = trained(family, "lora")
    adapter = load_file(art["out"] / "adapter_model.safetensors")
    lora_b = {k: v for k, v in adapter.items() if "lora_B" in k}
    # peft initialises lora_B to zeros: any non-zero entry was learned.
    assert lora_b and all(v.abs().max() > 0 for v in lora_b.values())
    assert all(part_of(k) == "llm" for k in adapter), "adapters must stay out of the vision tower"
    model, _ = load_model_and_processor(art["base"], adapter=art["out"])
    base_model, _ = load_model_and_processor(art["base"])
    base_params = dict(base_model.named_parameters())
    frozen = {k: v for k, v in model.named_parameters() if "lora_" not in k}
    assert len(frozen) == len(base_params)
    for name, value in frozen.items():
        key = name.replace("base_model.model.", "", 1).replace(".base_layer", "")
        torch.testing.assert_close(value, base_params[key], rtol=0, atol=0, msg=f"{name} changed")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_full_trains_the_language_model_and_freezes_the_vision_tower(trained, family):
    art = trained(family, "full")
    base = load_file(art["base"] / "model.safetensors")
    tuned = load_file(art["out"] / "model.safetensors")
    assert set(base) == set(tuned)
    changed = {k for k in base if not torch.equal(base[k], tuned[k])}
    vision = {k for k in base if part_of(k) in ("vision", "mlp")}
    assert vision and not (changed & vision), sorted(changed & vision)[:3]
    llm_linear = {k for k in base if part_of(k) == "llm" and k.endswith("proj.weight")}
    assert llm_linear <= changed


@pytest.mark.slow
def test_merged_adapter_gives_the_adapter_logits(trained, tmp_path):
    art = trained("qwen3_vl", "lora")
    merged_dir = merge_run(MergeConfig(base=str(art["base"]), adapter=str(art["out"]), output_dir=str(tmp_path / "m")))
    assert not (merged_dir / "adapter_config.json").exists()
    model, processor = load_model_and_processor(merged_dir)
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    torch.testing.assert_close(logits_of(model, art["batch"]), art["logits"], rtol=0, atol=1e-4)
    with pytest.raises(PipelineError, match="not empty"):
        MergeConfig(base=str(art["base"]), adapter=str(art["out"]), output_dir=str(merged_dir))


@pytest.mark.slow
def test_resume_continues_at_the_checkpoint_step(tiny_qwen3_vl, train_dataset_dir, tmp_path, caplog):
    out = tmp_path / "run"
    config = overfit_config(tiny_qwen3_vl, train_dataset_dir, out, "lora", max_steps=2, save_steps=1)
    first = run(config)
    assert first.global_step == 2 and (out / "checkpoint-1").is_dir() and (out / "checkpoint-2").is_dir()
    # Continue from step 1 to 3: exactly two more optimizer steps, numbered 2 and 3.
    resumed_config = overfit_config(
        tiny_qwen3_vl,
        train_dataset_dir,
        out,
        "lora",
        max_steps=3,
        save_steps=1,
        resume_from_checkpoint=str(out / "checkpoint-1"),
    )
    with caplog.at_level("INFO", logger="pipeline.stages.train"):
        prepared = prepare(resumed_config)
    assert f"resuming from {out / 'checkpoint-1'} (step 1)" in caplog.text
    output = prepared.trainer.train(resume_from_checkpoint=prepared.resume)
    history_steps = [e["step"] for e in prepared.trainer.state.log_history if "loss" in e]
    assert prepared.trainer.state.global_step == 3
    assert history_steps == [1, 2, 3]
    assert len(prepared.losses) == 2
    assert finish(prepared, output, 0.0).global_step == 3
    # "last" picks the newest checkpoint.
    last = overfit_config(tiny_qwen3_vl, train_dataset_dir, out, "lora", max_steps=3, resume_from_checkpoint="last")
    assert check_output_dir(last) == str(out / "checkpoint-3")


def greedy_reference(model, encoder, messages, steps: int) -> list[int]:
    """Greedy decoding by hand: full forward pass per token, argmax of the last position (no cache, no padding)."""
    inputs = encoder.encode(messages, for_generation=True)
    ids = inputs["input_ids"]
    new: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
            mm = inputs.get("mm_token_type_ids")
            if mm is not None:
                extra["mm_token_type_ids"] = torch.cat(
                    [mm, torch.zeros((1, ids.shape[1] - mm.shape[1]), dtype=mm.dtype)], 1
                )
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra).logits
            token = int(logits[0, -1].argmax())
            new.append(token)
            if token == 151645:
                break
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return new


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_generation_matches_hand_greedy_decoding_batched_and_single(trained, train_dataset_dir, family):
    from pipeline.model.collator import SampleEncoder
    from pipeline.model.inference import generate_answers
    from pipeline.stages.train.trainer import load_rows

    art = trained(family, "full")
    model, processor = load_model_and_processor(art["out"])
    rows = [load_rows(train_dataset_dir, "train")[0], load_rows(train_dataset_dir, "test")[0]]
    # A longer prompt on the second row, so that the batch really is left-padded.
    longer = [dict(m) for m in rows[1]["messages"]]
    text_item = dict(longer[1]["content"][1], text=longer[1]["content"][1]["text"] + " Be precise and brief.")
    longer[1] = {"role": "user", "content": [longer[1]["content"][0], text_item]}
    rows[1] = dict(rows[1], messages=longer)
    steps = 6
    batched = generate_answers(model, processor, rows, max_new_tokens=steps, batch_size=2)
    single = generate_answers(model, processor, rows, max_new_tokens=steps, batch_size=1)
    assert batched == single
    encoder = SampleEncoder(processor)
    expected = [
        processor.tokenizer.decode(
            greedy_reference(model, encoder, r["messages"], steps), skip_special_tokens=True
        ).strip()
        for r in rows
    ]
    assert batched == expected
    assert all(isinstance(a, str) for a in batched) and any(a for a in batched)


@pytest.mark.slow
def test_trains_on_the_dataset_built_by_build_dataset(dataset_dir, tiny_qwen2_5_vl, tmp_path):
    """The stage-3 output itself (30 targets per second, 96x64 clips): labels are the real answer, one step runs."""
    from pipeline.model.collator import IGNORE_INDEX, SampleEncoder
    from pipeline.stages.train.trainer import load_rows

    rows = load_rows(dataset_dir, "train")
    model_dir = tiny_qwen2_5_vl
    _, processor = load_model_and_processor(model_dir)
    inputs = SampleEncoder(processor).encode(rows[0]["messages"])
    labelled = [t for t in inputs["labels"][0].tolist() if t != IGNORE_INDEX]
    assert processor.tokenizer.decode(labelled) == rows[0]["messages"][-1]["content"][0]["text"] + "<|im_end|>"
    # 96x64 → 28-px grid 84x56 (rounded) → 6x4 patches per frame → 6 tokens per frame pair, 2 pairs.
    assert int((inputs["input_ids"] == 151656).sum()) == 12
    config = overfit_config(model_dir, dataset_dir, tmp_path / "out", "lora", max_steps=1, max_train_samples=None)
    result = run(config)
    assert result.global_step == 1 and result.train_samples == len(rows) and not result.skipped_samples


@pytest.mark.slow
def test_thinking_template_trains(tiny_qwen3_vl_thinking, train_dataset_dir, tmp_path):
    config = overfit_config(tiny_qwen3_vl_thinking, train_dataset_dir, tmp_path / "out", "lora", max_steps=2)
    result = run(config)
    assert result.global_step == 2 and len(result.losses) == 2 and all(torch.isfinite(torch.tensor(result.losses)))


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_lora_with_tune_mm_mlp_trains_the_merger_then_reloads_merges_and_generates(
    request, family, train_dataset_dir, tmp_path
):
    from pipeline.model.inference import generate_answers
    from pipeline.stages.train.trainer import load_rows

    base_dir = request.getfixturevalue(f"tiny_{family}")
    out = tmp_path / "run"
    run(overfit_config(base_dir, train_dataset_dir, out, "lora", max_steps=2, tune_mm_mlp=True))

    def projector_of(weights: dict) -> dict:
        # Keyed from `visual.` on: Qwen2.5-VL checkpoints keep the legacy `visual.*` layout, adapters `model.visual.*`.
        names = {k.replace(".modules_to_save.default", ""): v for k, v in weights.items() if part_of(k) == "mlp"}
        return {k[k.index("visual.") :]: v for k, v in names.items() if "original_module" not in k}

    base = projector_of(load_file(base_dir / "model.safetensors"))
    saved = projector_of(load_file(out / "adapter_model.safetensors"))
    assert set(saved) == set(base) and len(base) >= 5  # the projector is saved in full
    if family == "qwen3_vl":
        assert any("deepstack_merger_list" in k for k in base)
    assert all(not torch.equal(base[k], saved[k]) for k in base), "a projector weight was not trained"

    adapted, processor = load_model_and_processor(base_dir, adapter=out)
    reloaded = projector_of(dict(adapted.named_parameters()))
    merged_dir = merge_run(MergeConfig(base=str(base_dir), adapter=str(out), output_dir=str(tmp_path / "merged")))
    merged = projector_of(load_file(merged_dir / "model.safetensors"))
    for key in base:
        torch.testing.assert_close(reloaded[key], saved[key], rtol=0, atol=0)
        torch.testing.assert_close(merged[key], saved[key], rtol=0, atol=0)
    merged_model, merged_processor = load_model_and_processor(merged_dir)
    rows = load_rows(train_dataset_dir, "test").select(range(1))
    answers = generate_answers(merged_model, merged_processor, rows, max_new_tokens=6)
    assert answers == generate_answers(adapted, processor, rows, max_new_tokens=6) and answers[0]


@pytest.mark.slow
def test_checkpoints_and_merged_model_carry_the_trained_video_settings(
    tiny_qwen3_vl, train_dataset_dir, tmp_path, caplog
):
    import logging

    from pipeline.stages.evaluate.stage import EvaluateConfig
    from pipeline.stages.evaluate.stage import run as evaluate_run

    out = tmp_path / "run"
    trained = {"fps": 8.0, "max_pixels": 8192}  # not the defaults (4.0, 200704)
    config = overfit_config(
        tiny_qwen3_vl, train_dataset_dir, out, "lora", max_steps=1, save_steps=1, video_fps=8.0, video_max_pixels=8192
    )
    run(config)
    settings = json.loads((out / CONFIG_FILE).read_text())
    assert json.loads((out / "checkpoint-1" / CONFIG_FILE).read_text()) == settings
    merged = merge_run(MergeConfig(base=str(tiny_qwen3_vl), adapter=str(out), output_dir=str(tmp_path / "merged")))
    assert json.loads((merged / CONFIG_FILE).read_text()) == settings
    for run_dir in (out, merged):  # what `serve-model` hands the engine: the template without the outer wrapper
        template = (run_dir / "serving_template.jinja").read_text()
        assert "<|video_pad|>" in template and "<|vision_start|><|video_pad|>" not in template
    evaluation = EvaluateConfig(
        dataset=train_dataset_dir,
        output_dir=tmp_path / "eval",
        model=str(merged),
        max_samples=1,
        generation=GenerationSettings(max_new_tokens=4),
        device="cpu",
    )
    with caplog.at_level(logging.INFO, logger="pipeline.stages.evaluate"):
        evaluate_run(evaluation)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    used = metrics["settings"]["video_settings"]
    assert {k: used[k] for k in trained} == trained
    assert metrics["video_settings_source"] == str(merged / CONFIG_FILE)
    assert any("video settings" in r.message and str(merged / CONFIG_FILE) in r.message for r in caplog.records)


@pytest.mark.slow
def test_full_fine_tuning_of_a_bf16_checkpoint_trains_fp32_weights_unless_bf16(
    tiny_qwen2_5_vl, train_dataset_dir, tmp_path
):
    from pipeline.stages.train.trainer import parameter_dtypes

    model, processor = load_model_and_processor(tiny_qwen2_5_vl)
    bf16_dir = tmp_path / "bf16"
    model.to(torch.bfloat16).save_pretrained(bf16_dir)
    processor.save_pretrained(bf16_dir)
    assert json.loads((bf16_dir / "config.json").read_text())["dtype"] == "bfloat16"
    assert {p.dtype for p in load_model_and_processor(bf16_dir)[0].parameters()} == {torch.bfloat16}  # as stored

    prepared = prepare(overfit_config(bf16_dir, train_dataset_dir, tmp_path / "fp32", "full", max_steps=1))
    before = {n: p.detach().clone() for n, p in prepared.trainer.model.named_parameters() if p.requires_grad}
    result = finish(prepared, prepared.trainer.train(), 0.0)
    trained = dict(prepared.trainer.model.named_parameters())
    assert before and all(trained[n].dtype == torch.float32 for n in before)
    assert any(not torch.equal(trained[n], before[n]) for n in before)
    assert set(result.parameter_dtypes["trainable"]) == {"float32"}

    mixed = prepare(overfit_config(bf16_dir, train_dataset_dir, tmp_path / "bf16run", "full", max_steps=1, bf16=True))
    assert set(parameter_dtypes(mixed.trainer.model)["trainable"]) == {"bfloat16"}


def assert_modes_follow_umask(root, mask: int) -> None:
    for path in [root, *root.rglob("*")]:
        assert path.stat().st_mode & 0o777 == (0o777 if path.is_dir() else 0o666) & ~mask, path


@pytest.mark.slow
def test_every_file_a_run_writes_follows_the_umask(tiny_qwen3_vl, train_dataset_dir, tmp_path):
    out = tmp_path / "run"
    config = overfit_config(tiny_qwen3_vl, train_dataset_dir, out, "lora", max_steps=1, save_steps=1)
    old = os.umask(0o027)
    try:
        prepared = prepare(config)
        output = prepared.trainer.train()
        assert_modes_follow_umask(out / "checkpoint-1", 0o027)  # as soon as it is saved (a run may be killed)
        finish(prepared, output, 0.0)
    finally:
        os.umask(old)
    assert (out / "adapter_model.safetensors").is_file()  # safetensors alone writes 0600
    assert_modes_follow_umask(out, 0o027)
