"""Commands built when they are looked up, so that `pipeline --help` and a command's start import one config.

A command is registered with its config classes named as `"module:Class"` (`LazyCommands.command`); the group
(`LazyGroup`) lists the names and takes the top-level help's one-line summaries from the command functions'
docstrings, as typer would, and builds a command (imports its configs, makes its options with `config_command`) only
when click asks for it by name: to run it, print its help, suggest or complete it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from pipeline.core.options import config_command

Function = TypeVar("Function", bound=Callable[..., Any])


@dataclass(frozen=True)
class CommandSpec:
    """What `config_command` and typer need to build one command: its configs as `"module:Class"` references."""

    function: Callable[..., Any]
    config: str
    extra: Mapping[str, str]
    layered: bool
    build_config: bool
    context_settings: dict[str, Any] = field(default_factory=dict)

    def build(self, name: str) -> TyperCommand:
        """The typer command, its config classes imported and its options made from them."""
        extra = {key: _load(ref) for key, ref in self.extra.items()}
        options = config_command(_load(self.config), layered=self.layered, build_config=self.build_config, **extra)
        single = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)
        single.command(name, context_settings=self.context_settings)(options(self.function))
        return typer.main.get_command(single)

    def summary(self, name: str) -> TyperCommand:
        """A command with only the name and help text of the built one, for the group's list of commands."""
        return TyperCommand(name=name, help=inspect.getdoc(self.function))


def _load(reference: str) -> type:
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


class LazyCommands(Mapping[str, TyperCommand]):
    """Commands by name, in the order they were registered, each built when first looked up."""

    def __init__(self) -> None:
        self.specs: dict[str, CommandSpec] = {}
        self._built: dict[str, TyperCommand] = {}

    def command(
        self,
        name: str | None = None,
        *,
        config: str,
        layered: bool = False,
        build_config: bool = True,
        context_settings: dict[str, Any] | None = None,
        **extra: str,
    ) -> Callable[[Function], Function]:
        """Register a command function under `name` (default: its name with dashes); the arguments are
        `config_command`'s, with `"module:Class"` references for the classes, and typer's `context_settings`."""

        def register(function: Function) -> Function:
            spec = CommandSpec(function, config, extra, layered, build_config, context_settings or {})
            self.specs[name or function.__name__.replace("_", "-")] = spec
            return function

        return register

    def __getitem__(self, name: str) -> TyperCommand:
        if name not in self._built:
            self._built[name] = self.specs[name].build(name)
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)


class LazyGroup(TyperGroup):
    """A typer group whose commands are `table`'s (a subclass sets it; typer makes the group with `cls=`)."""

    table: ClassVar[LazyCommands]

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = self.table

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:
        """Typer's list of commands, made from each command's name and docstring without building any."""
        summaries = [spec.summary(name) for name, spec in self.table.specs.items()]
        TyperGroup(commands=summaries).format_commands(ctx, formatter)


__all__ = ["CommandSpec", "LazyCommands", "LazyGroup"]
