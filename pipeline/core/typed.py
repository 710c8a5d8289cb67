"""Values from a YAML or JSON file, checked against a config's field types at the edge: PyYAML reads `1e-4` as a
string (YAML 1.1 wants `1.0e-4`), so numbers written as text are read as numbers, and a value of the wrong kind
(`"fast"` for a rate, a list for a count) is one line naming the file and the key."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from pipeline.core.errors import PipelineError


def typed_values(cls: type, values: Mapping[str, Any], source: str, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """`values` (nested field names, as `options.nest` gives) with each value of the kind its field's type wants.

    Raises:
        PipelineError: `SOURCE: KEY: expected a number, got 'fast'` (one line).
    """
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for key, value in values.items():
        hint = _without_none(hints.get(key, Any))
        name = ".".join((*path, key))
        if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            out[key] = typed_values(hint, value, source, (*path, key))
        else:
            out[key] = typed_value(hint, value, f"{source}: {name}")
    return out


def _without_none(hint: Any) -> Any:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return inner[0] if len(inner) == 1 else hint
    return hint


def _refuse(where: str, wanted: str, value: Any) -> PipelineError:
    return PipelineError(f"{where}: expected {wanted}, got {repr(value)[:80]}")


def typed_value(hint: Any, value: Any, where: str) -> Any:
    """One value as type `hint` wants it: a number from its text, a list of text as a tuple; else refused."""
    if value is None:
        return None
    if hint is bool:
        if not isinstance(value, bool):
            raise _refuse(where, "true or false", value)
        return value
    if hint in (int, float):
        return _number(hint, value, where)
    if hint is str:
        if not isinstance(value, str):
            raise _refuse(where, "text", value)
        return value
    if typing.get_origin(hint) is tuple and not isinstance(value, str):
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise _refuse(where, "a list of names", value)
        return tuple(value)
    return value


def _number(kind: type, value: Any, where: str) -> int | float:
    wanted = "a whole number" if kind is int else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _refuse(where, wanted, value)
    if isinstance(value, str):
        try:
            value = float(value.strip()) if kind is float else int(value.strip())
        except ValueError:
            raise _refuse(where, wanted, value) from None
    if kind is int and isinstance(value, float):
        if not value.is_integer():
            raise _refuse(where, wanted, value)
        return int(value)
    return kind(value)


__all__ = ["typed_value", "typed_values"]
