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


def test_parse_hooks_give_one_config_from_text_from_values_and_through_replace(tmp_path):
    import dataclasses
    from pathlib import Path

    from pipeline.stages.segment.config import SegmentConfig

    typed = SegmentConfig(
        input_dir="in", output_dir="out", chunks=["0-2", "5"], size="64x36", shard="1/2", max_clips=0
    )
    given = SegmentConfig(
        input_dir=Path("in"), output_dir=Path("out"), chunks=(0, 1, 2, 5), size=(64, 36), shard=(1, 2), max_clips=None
    )
    built = build(
        SegmentConfig,
        nest(
            SegmentConfig,
            {
                "input_dir": "in",
                "output_dir": "out",
                "chunk": ["0-2", "5"],
                "size": "64x36",
                "shard": "1/2",
                "max_clips": 0,
            },
        ),
    )
    assert typed == given == built
    assert (typed.input_dir, typed.chunks, typed.size, typed.shard, typed.max_clips) == (
        Path("in"),
        (0, 1, 2, 5),
        (64, 36),
        (1, 2),
        None,
    )
    assert dataclasses.replace(typed, window_s=2.0).size == (64, 36)  # a parsed value parses to itself
    assert SegmentConfig(size="native").size is None
    with pytest.raises(PipelineError, match=r"--shard '2/2': need n >= 1 and 0 <= i < n"):
        SegmentConfig(shard="2/2")


def test_settings_groups_parse_their_text_too():
    from pipeline.contracts.run_config import LoraSettings
    from pipeline.stages.dataset.config import DatasetConfig

    assert LoraSettings(target_modules="q_proj, v_proj,").target_modules == ("q_proj", "v_proj")
    assert LoraSettings(target_modules=["q_proj"]).target_modules == ("q_proj",)
    whole = DatasetConfig(target_hz=30.0)
    assert whole.target_hz == 30 and isinstance(whole.target_hz, int)
    with pytest.raises(PipelineError, match="positive whole number of targets per second, got 30.5"):
        DatasetConfig(target_hz=30.5)


def test_configs_are_frozen():
    import dataclasses

    import typer.main

    from pipeline.cli.app import app
    from pipeline.core.options import _GROUP

    def config_classes(cls: type) -> list[type]:
        groups = [f.metadata[_GROUP] for f in dataclasses.fields(cls) if _GROUP in f.metadata]
        return [cls, *(c for g in groups for c in config_classes(g))]

    commands = [c.callback for c in typer.main.get_command(app).commands.values()]
    roots = [cmd.config_class for cmd in commands] + [c for cmd in commands for c in cmd.extra_classes.values()]
    classes = {c for root in roots for c in config_classes(root)}
    mutable = {c.__name__ for c in classes if not c.__dataclass_params__.frozen}
    assert mutable == set()
    assert len(classes) >= 17


def test_resolved_json_keeps_each_files_forms(tmp_path):
    from pipeline.stages.download.config import DownloadConfig
    from pipeline.stages.segment.config import SegmentConfig
    from pipeline.standins.synth_config import SynthConfig

    segment = SegmentConfig(input_dir="in", output_dir=tmp_path / "out", chunks=["1-2"], shard="1/3").to_json()
    assert (segment["input_dir"], segment["output_dir"]) == ("in", str(tmp_path / "out"))  # paths as given
    assert (segment["chunks"], segment["size"], segment["shard"], segment["max_clips"]) == (
        [1, 2],
        [448, 252],
        "1/3",
        5,
    )
    assert SegmentConfig(size="native").to_json()["size"] == "native"
    download = DownloadConfig(output_dir="data", chunks=("0-1", "3"), token="secret").to_json()
    assert "token" not in download and download["output_dir"] == "data"
    assert (download["chunks"], download["chunk_ranges"]) == (["0-1", "3"], [[0, 1], [3, 3]])
    synth = SynthConfig(output_dir=tmp_path, size="640x360")
    assert (synth.width, synth.height, synth.size) == (640, 360, None)
    assert synth.to_json()["output_dir"] == str(tmp_path) and synth.to_json()["cameras"] == list(synth.cameras)
