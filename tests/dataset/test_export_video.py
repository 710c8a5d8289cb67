"""The exports' ready-to-run files carry the --video-* values of `pipeline export` in each framework's terms."""

import re
import shlex
import subprocess

import pytest
import yaml

from pipeline.cli.app import main
from pipeline.stages.export.video import framework_model


def _exports(path) -> dict[str, str]:
    found = re.findall(r"^export (\w+)=(.*)$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {name: shlex.split(value)[0] for name, value in found}


def _flag(script: str, name: str) -> str:
    return re.search(rf"--{name} (\S+)", script).group(1)


def test_export_writes_our_video_settings_per_framework(dataset_dir, tmp_path, capsys):
    out = tmp_path / "exports"
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["export", "--dataset", str(dataset_dir), "--output-dir", str(out),
             "--model", "Qwen/Qwen2.5-VL-3B-Instruct", "--video-fps", "2", "--video-max-frames", "16",
             "--video-min-frames", "2", "--video-max-pixels", "100352", "--video-min-pixels", "3136"]
        )  # fmt: skip
    assert exit_info.value.code == 0

    swift = out / "ms-swift" / "train.sh"
    assert _exports(swift) == {
        "FPS": "2",
        "FPS_MIN_FRAMES": "2",
        "FPS_MAX_FRAMES": "16",
        "VIDEO_MIN_PIXELS": "3136",
        "VIDEO_MAX_PIXELS": "100352",
    }
    assert "--model_type qwen2_5_vl" in swift.read_text(encoding="utf-8")
    assert subprocess.run(["bash", "-n", str(swift)]).returncode == 0

    lf = yaml.safe_load((out / "llama-factory" / "train_lora.yaml").read_text(encoding="utf-8"))
    assert (lf["video_fps"], lf["video_maxlen"], lf["video_max_pixels"], lf["video_min_pixels"]) == (
        2,
        16,
        100352,
        3136,
    )
    assert lf["template"] == "qwen2_vl"
    assert lf["dataset_dir"] == str((out / "llama-factory").resolve())
    assert lf["model_name_or_path"] == "Qwen/Qwen2.5-VL-3B-Instruct"

    qwen = (out / "qwen-vl-finetune" / "train.sh").read_text(encoding="utf-8")
    assert [_flag(qwen, f"video_{k}") for k in ("fps", "max_frames", "min_frames", "max_pixels", "min_pixels")] == [
        "2", "16", "2", "100352", "3136"]  # fmt: skip
    assert subprocess.run(["bash", "-n", str(out / "qwen-vl-finetune" / "train.sh")]).returncode == 0

    for framework in ("ms-swift", "llama-factory", "qwen-vl-finetune"):
        readme = (out / framework / "README.md").read_text(encoding="utf-8")
        assert "--video-fps 2 --video-min-frames 2" in readme
        assert "What this framework does differently" in readme


def test_framework_model_names():
    assert framework_model("Qwen/Qwen3-VL-2B-Instruct").llama_factory_template == "qwen3_vl_nothink"
    assert framework_model("Qwen/Qwen2.5-VL-7B-Instruct").swift_model_type == "qwen2_5_vl"
    assert framework_model("/models/tiny_qwen2_5_vl").swift_model_type == "qwen2_5_vl"
