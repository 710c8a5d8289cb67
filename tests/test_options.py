"""The settings adapter: one schema for the command line, config files and the resolved JSON."""

import json

import pytest

from pipeline.contracts.run_config import RunSettings, read_run_config
from pipeline.core.errors import PipelineError
from pipeline.core.options import build, merge, nest, options_of
from pipeline.stages.train.config import TrainConfig


def test_groups_flatten_to_prefixed_options():
    options = {o.name: o for o in options_of(TrainConfig)}
    assert options["video_fps"].path == ("video", "fps")
    assert options["video_fps"].decls == ("--video-fps", "--video_fps")
    assert options["video_fps"].default == 4.0
    assert options["lora_r"].path == ("lora", "r")
    assert options["lora_enable"].decls == ("--lora-enable/--no-lora-enable", "--lora_enable/--no_lora_enable")


def test_layered_options_default_to_none_and_show_the_field_default():
    options = {o.name: o for o in options_of(TrainConfig, layered=True)}
    assert options["learning_rate"].default is None and options["learning_rate"].show_default == "0.0001"
    assert options["video_max_pixels"].default is None and options["video_max_pixels"].show_default == "200704"


def test_nest_reads_flat_names_flag_spellings_and_nested_groups():
    flat = nest(TrainConfig, {"video_fps": 2.0, "lora-r": 4, "overwrite_output": True, "seed": None})
    nested = nest(TrainConfig, {"video": {"fps": 2.0}, "lora": {"r": 4}, "overwrite": True})
    assert flat == nested == {"video": {"fps": 2.0}, "lora": {"r": 4}, "overwrite": True}
    with pytest.raises(PipelineError, match=r"f\.yaml: unknown option\(s\) video_colour"):
        nest(TrainConfig, {"video_colour": 1}, source="f.yaml")
    with pytest.raises(PipelineError, match="unknown option"):
        nest(TrainConfig, {"video": {"colour": 1}})


def test_merge_is_key_by_key_inside_groups():
    merged = merge({"video": {"fps": 2.0, "max_frames": 8}, "seed": 1}, {"video": {"fps": 3.0}})
    assert merged == {"video": {"fps": 3.0, "max_frames": 8}, "seed": 1}
    config = build(TrainConfig, merged)
    assert (config.video.fps, config.video.max_frames, config.video.min_frames, config.seed) == (3.0, 8, 4, 1)


def test_yaml_groups_and_flat_names_give_one_config(tmp_path):
    nested, flat = tmp_path / "nested.yaml", tmp_path / "flat.yaml"
    nested.write_text("video:\n  fps: 2.0\nlora:\n  r: 4\n  target_modules: [q_proj, v_proj]\nbf16: true\n")
    flat.write_text("video-fps: 2.0\nlora_r: 4\nlora_target_modules: q_proj,v_proj\nbf16: true\n")
    a, b = TrainConfig.from_sources(nested), TrainConfig.from_sources(flat)
    assert a == b
    assert (a.video.fps, a.lora.r, a.lora.target_modules, a.bf16) == (2.0, 4, ("q_proj", "v_proj"), True)
    assert TrainConfig.from_sources(nested, {"video_fps": 8.0}).video.fps == 8.0  # the command line wins


def test_resolved_json_nests_the_groups_and_reads_back(tmp_path):
    config = TrainConfig.from_sources(overrides={"video_fps": 2.0, "lora_r": 4, "max_steps": 3})
    written = config.to_json()
    assert written["video"]["fps"] == 2.0 and written["lora"]["r"] == 4 and "video_fps" not in written
    (tmp_path / "train_config.json").write_text(json.dumps(written))
    values, path = read_run_config(tmp_path)
    assert build(RunSettings, values) == RunSettings(config.model, config.lora, config.video)
    assert path == tmp_path / "train_config.json"
    assert read_run_config(tmp_path / "nowhere") is None


def test_an_exposed_group_offers_some_fields_with_their_own_help_and_keeps_its_default():
    from pipeline.stages.prepare.config import PrepareConfig

    options = {o.name: o for o in options_of(PrepareConfig)}
    assert options["input_dir"].path == ("segment", "input_dir")
    assert options["input_dir"].decls == ("--source-dir", "--source_dir")
    assert options["split"].help.startswith("train, val or test") and options["split"].default is None
    assert "max_clips" not in options and "shard" not in options  # prepare cuts whole chunks
    config = build(PrepareConfig, nest(PrepareConfig, {"source_dir": "src", "size": "64x36", "all": True}))
    # The group's default (no clip cap), changed by the options given; the other fields keep the segment defaults.
    assert (str(config.segment.input_dir), config.segment.size, config.segment.max_clips) == ("src", (64, 36), None)
    assert config.segment.window_s == 1.0 and config.all_chunks


def test_an_option_reads_its_environment_variable(monkeypatch):
    import typer
    from typer.testing import CliRunner

    from pipeline.core.options import config_command
    from pipeline.engines.config import EngineConfig
    from pipeline.stages.segment.config import SegmentConfig

    app, seen = typer.Typer(), []

    @app.command()
    @config_command(SegmentConfig, engine=EngineConfig)
    def run(config: SegmentConfig, engine: EngineConfig) -> None:
        seen.append((config, engine))

    result = CliRunner().invoke(app, ["--window", "2", "--engine", "ray"], env={"RAY_ADDRESS": "10.0.0.1:6379"})
    assert result.exit_code == 0, result.output
    config, engine = seen[0]
    assert config.window_s == 2.0 and (engine.engine, engine.ray_address, engine.retries) == (
        "ray",
        "10.0.0.1:6379",
        2,
    )
