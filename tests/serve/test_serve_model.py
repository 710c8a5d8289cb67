"""`pipeline serve-model --dry-run`: the engine command carries every flag that keeps served prompts and frames
identical to training's, and the serving template drops Qwen3-VL's outer video wrapper."""

from __future__ import annotations

import json
import shlex
import shutil

import pytest

from pipeline.cli.app import main


def dry_run(capsys, *args: str) -> list[str]:
    with pytest.raises(SystemExit) as info:
        main(["serve-model", *args, "--dry-run"])
    assert not info.value.code, capsys.readouterr().err
    return shlex.split(capsys.readouterr().out.strip())


def test_vllm_command_serves_the_run_with_its_template_and_media_settings(tiny_qwen3_vl, tmp_path, capsys):
    from transformers import AutoProcessor

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_qwen3_vl, run_dir)
    command = dry_run(capsys, str(run_dir), "--engine-python", "/opt/vllm/bin/python", "--port", "8123", "--cpu")
    assert command[:3] == ["/opt/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    flags = dict(zip(command[3::1], command[4::1], strict=False))
    assert flags["--model"] == str(run_dir) and flags["--served-model-name"] == "run"
    assert flags["--chat-template"] == str(run_dir / "serving_template.jinja")
    assert json.loads(flags["--media-io-kwargs"]) == {"video": {"video_backend": "opencv"}}
    assert flags["--allowed-local-media-path"] == "/" and flags["--port"] == "8123" and flags["--dtype"] == "float32"
    assert int(flags["--max-model-len"]) == 5120  # 16 frame pairs x 196 tokens + 1024, rounded up
    assert {"--trust-request-mm-kwargs", "--enforce-eager"} <= set(command)
    processor = AutoProcessor.from_pretrained(run_dir)
    template = (run_dir / "serving_template.jinja").read_text()
    assert "<|vision_start|><|video_pad|><|vision_end|>" in processor.chat_template
    assert "<|vision_start|><|video_pad|><|vision_end|>" not in template and "<|video_pad|>" in template


def test_a_lora_run_is_served_as_base_plus_adapter_and_transformers_needs_merged_weights(
    tiny_qwen3_vl, tmp_path, capsys
):
    run_dir = tmp_path / "adapter"
    run_dir.mkdir()
    (run_dir / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen3-VL-2B", "r": 16}))
    (run_dir / "serving_template.jinja").write_text("{{ messages }}")
    command = dry_run(capsys, str(run_dir))
    assert command[command.index("--model") + 1] == "Qwen/Qwen3-VL-2B"
    assert command[command.index("--lora-modules") + 1] == f"adapter={run_dir}"
    assert command[command.index("--max-lora-rank") + 1] == "16" and "--enable-lora" in command
    with pytest.raises(SystemExit) as info:
        main(["serve-model", str(run_dir), "--engine", "transformers", "--dry-run"])
    assert info.value.code == 2 and "pipeline merge-lora" in capsys.readouterr().err
    command = dry_run(capsys, str(tiny_qwen3_vl), "--engine", "transformers", "--port", "9000")
    assert command[1:4] == ["-m", "pipeline.standins.transformers_serve", str(tiny_qwen3_vl)]
    assert command[-2:] == ["--port", "9000"]


@pytest.mark.parametrize("args", [["/no/such/run"], ["{run}", "--engine", "sglang"], ["{run}", "--port", "0"]])
def test_bad_input_is_one_line_and_exit_2(args, tmp_path, capsys):
    args = [a.replace("{run}", str(tmp_path)) for a in args]
    with pytest.raises(SystemExit) as info:
        main(["serve-model", *args, "--dry-run"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and err.startswith("error:") and "\n" not in err


def test_qwen3_5_is_served_in_bfloat16_on_vllms_cpu_build(tiny_qwen3_5, capsys):
    # vLLM CPU's Gated DeltaNet kernel refuses float32 at the first request ("CPU GDN attention requires BF16")
    command = dry_run(capsys, str(tiny_qwen3_5), "--cpu")
    assert command[command.index("--dtype") + 1] == "bfloat16"
    command = dry_run(capsys, str(tiny_qwen3_5))
    assert command[command.index("--dtype") + 1] == "float32"
