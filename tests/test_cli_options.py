"""Each command's options are its config dataclass's settings, and every flag spelling of before issue 13 works."""

import dataclasses
import json
from pathlib import Path

import pytest
import typer.main

from pipeline.cli import app

# Parameters a command declares itself, beside its config's settings.
OWN_PARAMETERS = {"train": {"config_file"}, "segment": {"engine", "ray_address", "ray_cpus", "retries"}}
# Flags removed with the code behind them (accepted and ignored before).
REMOVED_FLAGS = {"build-dataset": {"--ego-motion-dir", "--ego_motion_dir"}}
BEFORE = json.loads((Path(__file__).parent / "fixtures" / "cli_flags_before_issue13.json").read_text())

COMMANDS = typer.main.get_command(app).commands
CONFIG_COMMANDS = {
    name: cmd.callback.config_class for name, cmd in COMMANDS.items() if hasattr(cmd.callback, "config_class")
}


def settings_of(cls: type, prefix: str = "") -> dict[str, dataclasses.Field]:
    """Flat name -> field of every setting of `cls` (fields with help), read from the dataclass itself."""
    out = {}
    for f in dataclasses.fields(cls):
        if "group" in f.metadata:
            sub = f.name if f.metadata["prefix"] is None else f.metadata["prefix"]
            out |= settings_of(f.metadata["group"], "_".join(p for p in (prefix, sub) if p))
        elif "help" in f.metadata:
            out["_".join(p for p in (prefix, f.name) if p)] = f
    return out


def test_every_stage_command_takes_its_options_from_a_config():
    assert {"segment", "build-dataset", "download", "train", "evaluate", "export", "merge-lora"} <= set(
        CONFIG_COMMANDS
    )


@pytest.mark.parametrize("name", sorted(CONFIG_COMMANDS))
def test_command_options_are_the_config_fields(name):
    cls = CONFIG_COMMANDS[name]
    params = {p.name: p for p in COMMANDS[name].params if p.name != "help"}
    fields = settings_of(cls)
    assert set(params) - OWN_PARAMETERS.get(name, set()) == set(fields)
    for flat, f in fields.items():
        param = params[flat]
        assert param.help == f.metadata["help"], flat
        if param.default is not None:  # layered commands default to None: the file or the run fills in
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if f.metadata["cli_default"] is not dataclasses.MISSING:
                default = f.metadata["cli_default"]
            assert param.default == (list(default) if isinstance(default, tuple) else default), flat


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_flag_spellings_of_before_still_work(name):
    spellings = {s for p in COMMANDS[name].params for s in (*p.opts, *p.secondary_opts)}
    missing = set(BEFORE[name]) - REMOVED_FLAGS.get(name, set()) - spellings
    assert not missing, f"{name}: {sorted(missing)}"
