"""Command-line options derived from config dataclasses, so that every setting is defined once.

A config field becomes an option when it is declared with `setting(...)` (its help text and flag spellings live in
the field's metadata). A field declared with `group(...)` holds a dataclass of settings (video sampling, LoRA,
generation) and flattens into prefixed options: `video.fps` is `--video-fps` (also `--video_fps`), with the flat
name `video_fps`. `config_command(Config)` turns a command function into one whose options are the config's;
`nest` and `build` read the same schema from a YAML/JSON mapping (nested groups or flat names) and from the
command line, so a config file, the CLI and the resolved JSON written beside each output all agree.

Configs are frozen dataclasses. A field's `parse` hook turns what a user types (a path, "448x252", "q,v") into its
value; `parse_fields`, called first in each config's `__post_init__`, applies the hooks, so that a config built from
options and one made in Python hold the same values. `__post_init__` then validates, and `derive` sets the few fields
computed from others. `to_json` writes a config back: paths as given (`str(path)`), a field's `dump` hook where its
JSON form is not the generic one.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pipeline.core.errors import PipelineError

_HELP = "help"  # option help text (required for a field to be an option)
_FLAGS = "flags"  # typer parameter declarations, e.g. ("--max-clips", "--max_clips") or ("--x/--no-x",)
_CLI_TYPE = "cli_type"  # type the command line gives when it differs from the field's (e.g. str for a size)
_CLI_DEFAULT = "cli_default"  # default shown and used on the command line when it differs from the field's
_SHOW_DEFAULT = "show_default"
_ENVVAR = "envvar"  # environment variable read when the option is not given
_GROUP = "group"  # dataclass of a settings group
_PREFIX = "prefix"  # flag and flat-name prefix of a group ("" for none)
_OPTIONAL = "optional"  # a group that is None unless its required settings are given
_PARTIAL = "partial"  # default text of a group whose options override values read elsewhere (the field is a dict)
_PARSE = "parse"  # the field's value from what was given (text, or a value already parsed: hooks accept both)
_DUMP = "dump"  # the field's JSON form where it is not the generic one
_EXPOSE = "expose"  # the group's fields that are options, each with overrides of its setting (None: its settings)
# What a field declared without `setting(...)` gets when a group exposes it (with at least a help text).
_SETTING_DEFAULTS = {_FLAGS: (), _CLI_TYPE: None, _CLI_DEFAULT: MISSING, _SHOW_DEFAULT: True, _ENVVAR: None}


def setting(
    default: Any = MISSING,
    *,
    help: str,
    flags: Sequence[str] = (),
    default_factory: Callable[[], Any] | Any = MISSING,
    cli_type: Any = None,
    cli_default: Any = MISSING,
    show_default: bool | str = True,
    envvar: str | None = None,
    parse: Callable[[Any], Any] | None = None,
    dump: Callable[[Any], Any] | None = None,
    **field_kwargs: Any,
) -> Any:
    """A config field that is also a command-line option (`dataclasses.field` plus the option's description).

    Args:
        help: the option's help text (one line; it is the field's documentation too).
        flags: the spellings, as typer declarations; default `--name-with-dashes` and `--name_with_underscores`
            (`--x/--no-x` for a bool that defaults to True).
        cli_type, cli_default: the command line's type and default where they differ from the field's (`parse`
            then converts, e.g. "448x252" into (448, 252)).
        envvar: an environment variable the command line reads when the option is not given.
        parse: the field's value from what was given, applied by `parse_fields`: `Path`, `tuple`, a function
            that splits "q,v". It must also accept a value it already parsed (a default, `dataclasses.replace`).
        dump: the field's JSON form for `to_json` where the generic one does not fit (e.g. "0/1" for a shard).
    """
    metadata = {_HELP: help, _FLAGS: tuple(flags), _CLI_TYPE: cli_type, _CLI_DEFAULT: cli_default}
    metadata |= {_SHOW_DEFAULT: show_default, _ENVVAR: envvar, _PARSE: parse, _DUMP: dump}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata, **field_kwargs)


def overwrite_setting(help: str = "Replace an existing output dir.", flags: Sequence[str] = ()) -> Any:
    """The one option of every command that may replace its output: `--overwrite` (old spellings: `flags`)."""
    return setting(False, help=help, flags=("--overwrite", "--overwrite-output", "--overwrite_output", *flags))


def group(
    cls: type,
    *,
    prefix: str | None = None,
    partial_default: str = "",
    optional: bool = False,
    expose: Mapping[str, Mapping[str, Any]] | None = None,
    default_factory: Callable[[], Any] | None = None,
    **field_kwargs: Any,
) -> Any:
    """A config field holding a settings dataclass whose fields become prefixed options.

    Args:
        prefix: flag prefix (`video` gives `--video-fps`); default the field name; "" for none.
        partial_default: makes the options overrides of settings found elsewhere (a training run's): the field
            then holds a dict of the values given ({} by default), and help shows this text for the default, with
            `{}` standing for the group's own default (e.g. "the training run's, else {}").
        optional: the field is None unless the group's required settings are given (`--server URL` turns the
            server group on).
        expose: only these fields of `cls` are options here, in this order, each with overrides of its setting
            (`help`, `flags`; a field that is no option of its own config needs a `help`). Default: its settings.
        default_factory: the group's default when it is not `cls()`; the options then change that instance.
    """
    metadata = {_GROUP: cls, _PREFIX: prefix, _PARTIAL: partial_default, _OPTIONAL: optional, _EXPOSE: expose}
    if optional:
        return dataclasses.field(default=None, metadata=metadata, **field_kwargs)
    default_factory = default_factory or (dict if partial_default else cls)
    return dataclasses.field(default_factory=default_factory, metadata=metadata, **field_kwargs)


@dataclass(frozen=True)
class Option:
    """One command-line option of a config: where its value goes and how typer declares it."""

    name: str  # flat name, the command function's parameter: "video_fps"
    path: tuple[str, ...]  # field names from the config down: ("video", "fps")
    annotation: Any  # the parameter's type for typer
    default: Any  # the command line's default (None in layered configs and partial groups)
    decls: tuple[str, ...]  # flag spellings
    help: str
    show_default: bool | str
    envvar: str | None = None


def _group_prefix(f: dataclasses.Field) -> str:
    prefix = f.metadata.get(_PREFIX)
    return f.name if prefix is None else prefix


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _cli_annotation(hint: Any) -> Any:
    """The typer-friendly form of a field type: tuple[X, ...] -> list[X], Literal[...] -> str."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return list[args[0]]
    if origin is Literal:
        return str
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return _cli_annotation(inner[0]) | None if len(inner) == 1 else hint
    return hint


def _decls(name: str, meta: Mapping[str, Any], annotation: Any, default: Any) -> tuple[str, ...]:
    if meta[_FLAGS]:
        return meta[_FLAGS]
    spellings = [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])
    if annotation in (bool, bool | None) and default is not False:
        return tuple(f"{s}/--no-{s[2:]}" for s in spellings)
    return tuple(spellings)


def _cli_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def options_of(cls: type, *, layered: bool = False) -> list[Option]:
    """The options of config class `cls`, in field order, groups flattened.

    Args:
        layered: every option defaults to None (not given), so that values from a config file or another run
            show through; help still shows the field's default.
    """
    out: list[Option] = []
    _collect(cls, (), "", "{}" if layered else "", False, None, out)
    return out


def _exposed(cls: type, expose: Mapping[str, Mapping[str, Any]] | None) -> list[tuple[dataclasses.Field, Mapping]]:
    """The fields of `cls` that are options, each with its setting's metadata (with `expose`'s overrides)."""
    if expose is None:
        return [(f, f.metadata) for f in dataclasses.fields(cls)]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return [(fields[name], {**_SETTING_DEFAULTS, **fields[name].metadata, **over}) for name, over in expose.items()]


def _collect(
    cls: type,
    path: tuple[str, ...],
    prefix: str,
    layered: str,
    optional: bool,
    expose: Mapping[str, Mapping[str, Any]] | None,
    out: list[Option],
) -> None:
    """Append the options of `cls` to `out`; `layered`: "" or the default text ("{}": the field's default)."""
    for f, meta in _exposed(cls, expose):
        if _GROUP in meta:
            sub = _group_prefix(f)
            inner = f"{prefix}_{sub}" if prefix and sub else prefix or sub
            sub_layered = meta[_PARTIAL] or layered
            _collect(meta[_GROUP], (*path, f.name), inner, sub_layered, meta[_OPTIONAL], meta[_EXPOSE], out)
            continue
        if _HELP not in meta or not f.init:
            continue
        annotation = _cli_annotation(meta[_CLI_TYPE] or _field_type(cls, f))
        default = meta[_CLI_DEFAULT] if meta[_CLI_DEFAULT] is not MISSING else _field_default(f)
        default = _cli_value(default)
        if optional and default is MISSING:
            default = None
        show_default = meta[_SHOW_DEFAULT]
        if layered:
            if show_default is True and default not in (None, MISSING):
                show_default = layered.format(_shown(default))
            elif isinstance(show_default, str):
                show_default = layered.format(show_default)
            default = None
            if annotation is not None and not _is_optional(annotation):
                annotation = annotation | None
        name = f"{prefix}_{f.name}" if prefix else f.name
        decls = _decls(name, meta, annotation, default)
        option = Option(name, (*path, f.name), annotation, default, decls, meta[_HELP], show_default, meta[_ENVVAR])
        out.append(option)


def _field_type(cls: type, f: dataclasses.Field) -> Any:
    """The field's annotation evaluated in its class's module: only the option fields', not every field's as
    `typing.get_type_hints` would (the CLI builds the command it runs at start-up)."""
    if not isinstance(f.type, str):
        return f.type
    owner = next(c for c in cls.__mro__ if f.name in vars(c).get("__annotations__", {}))
    return eval(f.type, vars(sys.modules[owner.__module__]))  # noqa: S307 - the class's own annotation text


def _is_optional(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _parameter(option: Option) -> inspect.Parameter:
    import typer  # only commands need it; configs that declare settings do not

    info = typer.Option(*option.decls, help=option.help, show_default=option.show_default, envvar=option.envvar)
    default = inspect.Parameter.empty if option.default is MISSING else option.default
    annotated = Annotated[option.annotation, info]
    return inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotated)


def nest(cls: type, values: Mapping[str, Any], *, source: str = "options") -> dict[str, Any]:
    """Values keyed by flat names (`video_fps`, `video-fps`) or nested groups (`video: {fps: ...}`) as a nested
    dict of field names. None values are dropped (not given).

    Raises:
        PipelineError: a key that is no setting of `cls`, naming `source`.
    """
    by_flat = {spelling: o.path for o in options_of(cls) for spelling in _flat_names(o)}
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    out: dict[str, Any] = {}
    unknown = []
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if value is None:
            continue
        field = fields.get(key)
        if field is not None and _GROUP in field.metadata and isinstance(value, Mapping):
            out.setdefault(key, {}).update(nest(field.metadata[_GROUP], value, source=source))
        elif field is not None and _GROUP not in field.metadata:
            out[key] = value
        elif key in by_flat:
            *parents, leaf = by_flat[key]
            node = out
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = value
        else:
            unknown.append(key)
    if unknown:
        raise PipelineError(f"{source}: unknown option(s) {', '.join(sorted(unknown))}")
    return out


def _flat_names(option: Option) -> set[str]:
    """The option's flat name and every flag spelling as a key (`--overwrite-output` -> `overwrite_output`)."""
    names = {option.name}
    for decl in option.decls:
        names.add(decl.split("/")[0].lstrip("-").replace("-", "_"))
    return names


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Nested dicts merged left to right (later layers win, key by key inside groups)."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
    return out


def build(cls: type, values: Mapping[str, Any], base: Any = None) -> Any:
    """An instance of config `cls` from a nested dict (as `nest` gives); groups are built from their sub-dicts.

    Args:
        base: an instance of `cls` whose other fields the result keeps (default: `cls`'s defaults).
    """
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value = values[f.name]
        if _GROUP in f.metadata and not f.metadata[_PARTIAL] and isinstance(value, Mapping):
            if f.metadata[_OPTIONAL] and not _has_required(f.metadata[_GROUP], value):
                continue
            own_default = f.default_factory is not f.metadata[_GROUP] and not f.metadata[_OPTIONAL]
            value = build(f.metadata[_GROUP], value, base=f.default_factory() if own_default else None)
        kwargs[f.name] = value
    return cls(**kwargs) if base is None else dataclasses.replace(base, **kwargs)


def _has_required(cls: type, values: Mapping[str, Any]) -> bool:
    required = [f.name for f in dataclasses.fields(cls) if f.init and _field_default(f) is MISSING]
    return all(name in values for name in required)


def parse_fields(config: Any) -> None:
    """Apply each field's `parse` hook to its value, in place (frozen or not): the one place a config parses what
    it was given. Configs call it first in `__post_init__`."""
    for f in dataclasses.fields(config):
        parse = f.metadata.get(_PARSE)
        if parse is not None:
            object.__setattr__(config, f.name, parse(getattr(config, f.name)))


def derive(config: Any, **values: Any) -> None:
    """Set fields computed from other fields (e.g. `init=False` ones) on a frozen config, in `__post_init__` after
    the checks they rely on."""
    for name, value in values.items():
        object.__setattr__(config, name, value)


def to_json(value: Any) -> Any:
    """A config (or any dataclass) as JSON-ready values: groups nest, paths become strings as given (not resolved),
    tuples lists; a field's `dump` hook gives its own form. Fields with `repr=False` (a token) are left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _field_json(f, getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _field_json(f: dataclasses.Field, value: Any) -> Any:
    dump = f.metadata.get(_DUMP)
    return to_json(value if dump is None else dump(value))


def config_command(cls: type, *, layered: bool = False, build_config: bool = True, **extra: type) -> Callable:
    """Decorate a typer command function with the options of config `cls` (and of the `extra` configs).

    The function keeps its own parameters (arguments, `--config`, a `typer.Context`), listed first, and takes the
    config as `config` (built with `build`), or with `build_config=False` the nested values as `values` (for
    commands that layer them over a file or another run first). Each `extra` config (e.g. `engine=EngineConfig`:
    settings that go beside the stage's config, not into it) adds its options after `cls`'s and is passed built,
    under its keyword. The function's annotations may name these classes without its module importing them.
    """

    def decorate(func: Callable) -> Callable:
        taken = ("config", "values", *extra)
        classes = {c.__name__: c for c in (cls, *extra.values())}  # the annotations may name them unimported
        signature = inspect.signature(func, locals=classes, eval_str=True)
        own = [p for n, p in signature.parameters.items() if n not in taken]
        options = options_of(cls, layered=layered)
        extra_options = {name: options_of(extra_cls) for name, extra_cls in extra.items()}
        all_options = [*options, *(o for opts in extra_options.values() for o in opts)]
        params = [*own, *(_parameter(o) for o in all_options)]

        def command(**kwargs: Any) -> Any:
            given = {o.name: kwargs.pop(o.name) for o in options}
            extras = {name: {o.name: kwargs.pop(o.name) for o in opts} for name, opts in extra_options.items()}
            values = nest(cls, given)
            if build_config:
                kwargs["config"] = build(cls, values)
            else:
                kwargs["values"] = values
            kwargs |= {name: build(extra[name], nest(extra[name], v)) for name, v in extras.items()}
            return func(**kwargs)

        command.__name__ = func.__name__
        command.__qualname__ = func.__qualname__
        command.__doc__ = func.__doc__
        command.__module__ = func.__module__
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.options = all_options  # type: ignore[attr-defined]
        command.config_class = cls  # type: ignore[attr-defined]
        command.extra_classes = dict(extra)  # type: ignore[attr-defined]
        return command

    return decorate


__all__ = [
    "Option",
    "build",
    "config_command",
    "derive",
    "group",
    "merge",
    "nest",
    "options_of",
    "overwrite_setting",
    "parse_fields",
    "setting",
    "to_json",
]
