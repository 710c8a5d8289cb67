"""Each command's options are its config dataclass's settings, and every flag spelling of before issue 13 works."""

import dataclasses
import json
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from pipeline.cli.app import app

# Parameters a command declares itself, beside its config's settings.
OWN_PARAMETERS = {
    "train": {"config_file"},
    "serve": {"directory"},
    "make-tiny-model": {"output_dir"},
    "compare-builds": {"build_a", "build_b"},
    "serve-model": {"run_dir"},
}
# Flags removed with the code behind them (accepted and ignored before).
REMOVED_FLAGS = {"build-dataset": {"--ego-motion-dir", "--ego_motion_dir"}}
BEFORE = json.loads((Path(__file__).parent / "fixtures" / "cli_flags_baseline.json").read_text())

COMMANDS = typer.main.get_command(app).commands
CONFIG_COMMANDS = {
    name: cmd.callback.config_class for name, cmd in COMMANDS.items() if hasattr(cmd.callback, "config_class")
}


def settings_of(cls: type, prefix: str = "", expose: dict | None = None) -> dict[str, tuple[dataclasses.Field, dict]]:
    """Flat name -> (field, its setting's metadata) of every setting of `cls` (fields with help), read from the
    dataclass itself; `expose`: a group's chosen fields, with overrides of their metadata."""
    fields = dataclasses.fields(cls)
    if expose is not None:
        by_name = {f.name: f for f in fields}
        chosen = [
            (
                by_name[name],
                {"flags": (), "cli_default": dataclasses.MISSING, "envvar": None, **by_name[name].metadata, **over},
            )
            for name, over in expose.items()
        ]
    else:
        chosen = [(f, dict(f.metadata)) for f in fields]
    out = {}
    for f, meta in chosen:
        if "group" in meta:
            sub = f.name if meta["prefix"] is None else meta["prefix"]
            out |= settings_of(meta["group"], "_".join(p for p in (prefix, sub) if p), meta["expose"])
        elif "help" in meta:
            out["_".join(p for p in (prefix, f.name) if p)] = (f, meta)
    return out


def test_every_command_takes_its_options_from_configs():
    assert set(CONFIG_COMMANDS) == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(CONFIG_COMMANDS))
def test_command_options_are_the_config_fields(name):
    callback = COMMANDS[name].callback
    params = {p.name: p for p in COMMANDS[name].params if p.name != "help"}
    fields = settings_of(CONFIG_COMMANDS[name])
    for extra in callback.extra_classes.values():  # e.g. the engine settings beside segment's config
        assert not set(fields) & set(settings_of(extra))
        fields |= settings_of(extra)
    assert set(params) - OWN_PARAMETERS.get(name, set()) == set(fields)
    for flat, (f, meta) in fields.items():
        param = params[flat]
        assert param.help == meta["help"], flat
        assert param.envvar == meta["envvar"], flat
        if meta["flags"]:
            assert {*param.opts, *param.secondary_opts} == {s for d in meta["flags"] for s in d.split("/")}, flat
        if param.default is not None:  # layered commands default to None: the file or the run fills in
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if meta["cli_default"] is not dataclasses.MISSING:
                default = meta["cli_default"]
            assert param.default == (list(default) if isinstance(default, tuple) else default), flat


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_flag_spellings_of_before_still_work(name):
    spellings = {s for p in COMMANDS[name].params for s in (*p.opts, *p.secondary_opts)}
    missing = set(BEFORE[name]) - REMOVED_FLAGS.get(name, set()) - spellings
    assert not missing, f"{name}: {sorted(missing)}"


HELP = json.loads((Path(__file__).parent / "fixtures" / "cli_help.json").read_text())


@pytest.mark.parametrize("command", sorted(HELP))
def test_every_help_text_is_unchanged(command, monkeypatch):
    """The whole `--help` page of the app and of each command, at a fixed width, as the fixture recorded it."""
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.setenv("TERMINAL_WIDTH", "160")
    result = CliRunner().invoke(app, ([command] if command else []) + ["--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    assert result.output == HELP[command]
