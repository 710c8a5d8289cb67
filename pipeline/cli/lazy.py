"""Commands built when they are looked up: `pipeline --help` imports no config module, a command only its own.

A group (`LazyGroup`, subclassed once per app) registers each command function with its configs named as
`"module:Class"` (`LazyGroup.command`). It lists the commands, with the one-line summaries typer takes from the
functions' docstrings, without building any, and builds one (imports its configs, makes its options with
`config_command`) only when click looks it up by name: to run it, print its help or complete its options.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import typer
from typer.core import MarkupMode, TyperCommand, TyperGroup

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
    context_settings: dict[str, Any]

    def build(self, name: str, rich_markup_mode: MarkupMode) -> TyperCommand:
        """The typer command, its config classes imported and its options made from them (help in the group's
        `rich_markup_mode`)."""
        extra = {key: _load(ref) for key, ref in self.extra.items()}
        options = config_command(_load(self.config), layered=self.layered, build_config=self.build_config, **extra)
        single = typer.Typer(add_completion=False, rich_markup_mode=rich_markup_mode)
        single.command(name, context_settings=self.context_settings)(options(self.function))
        return typer.main.get_command(single)

    def summary(self, name: str) -> TyperCommand:
        """A command with only the name and help text of the built one, for the group's list of commands."""
        return TyperCommand(name=name, help=inspect.getdoc(self.function))


def _load(reference: str) -> type:
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


class LazyCommands(Mapping[str, TyperCommand]):
    """One group's commands by name, in the order they were registered, each built when first looked up."""

    def __init__(self, specs: Mapping[str, CommandSpec], rich_markup_mode: MarkupMode) -> None:
        self.specs = specs
        self.rich_markup_mode = rich_markup_mode
        self._built: dict[str, TyperCommand] = {}

    def __getitem__(self, name: str) -> TyperCommand:
        if name not in self._built:
            self._built[name] = self.specs[name].build(name, self.rich_markup_mode)
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)


class LazyGroup(TyperGroup):
    """A typer group (typer makes it with `cls=`) whose commands are those its subclass registers with `command`."""

    specs: ClassVar[dict[str, CommandSpec]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.specs = {}

    @classmethod
    def command(
        cls,
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
            cls.specs[name or function.__name__.replace("_", "-")] = spec
            return function

        return register

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(self.specs, self.rich_markup_mode)

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:
        """Typer's list of commands, made from each command's name and docstring without building any."""
        summaries = [spec.summary(name) for name, spec in self.specs.items()]
        TyperGroup(commands=summaries).format_commands(ctx, formatter)


__all__ = ["CommandSpec", "LazyCommands", "LazyGroup"]
