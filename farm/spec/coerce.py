"""YAML-shaped data to frozen dataclasses: every field coerced to its annotated type, strictly (no
unknown keys; ``5e-5`` is the float it means), with ``SpecError`` naming the dotted key at fault.
Pure."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from farm.errors import SpecError, shown

T = TypeVar("T")


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build a (nested) frozen dataclass from plain data (parsed YAML or JSON), strictly.

    Unknown or missing keys, values of the wrong type (see ``coerce``) and failed ``__post_init__``
    checks raise ``SpecError`` whose ``key`` is the dotted path from ``where``
    (``recipe.dp.delta``). ``None`` means all defaults.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpecError(
            f"expected a mapping of {cls.__name__} settings, got {shown(data)}", key=where
        )
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    for name in data:
        if name not in fields:
            raise SpecError(
                f"unknown key (expected one of {', '.join(fields)})", key=_join(where, str(name))
            )
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in data:
            raise SpecError(f"missing (required in {cls.__name__})", key=_join(where, name))
    hints = typing.get_type_hints(cls)
    kwargs = {name: coerce(hints[name], value, _join(where, name)) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except SpecError as exc:
        raise SpecError(exc.detail, key=_join(where, exc.key)) from exc
    except (TypeError, ValueError) as exc:
        raise SpecError(str(exc), key=where) from exc


def coerce(tp: Any, value: Any, key: str) -> Any:
    """``value`` checked against the annotation ``tp`` and returned in its type; ``SpecError``
    naming ``key``.

    Strict, with three conversions YAML needs: a list becomes a tuple where a tuple is declared, an
    int becomes a float where a float is, and so does a decimal string (YAML 1.1 reads ``5e-5``,
    without a dot, as the string ``"5e-5"``). ``True`` is never an int. Handles ``Any``, bool, int,
    float, str, unions with ``None``, ``list``/``tuple``/``dict`` of those, and nested dataclasses
    (through ``from_dict``).
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(tp, args, value, key)
    if dataclasses.is_dataclass(tp):
        if value is None:
            raise SpecError(f"expected {_name(tp)}, got null", key=key)
        return from_dict(tp, value, key)  # type: ignore[arg-type]
    if origin in (
        list,
        tuple,
        Sequence,
    ):  # Sequence[float] (an attack's grid): a YAML list, never a string
        if not isinstance(value, list | tuple):
            raise SpecError(f"expected {_name(tp)}, got {shown(value)}", key=key)
        items = [coerce(args[0] if args else Any, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise SpecError(f"expected {_name(tp)}, got {shown(value)}", key=key)
        kt, vt = args or (Any, Any)
        return {coerce(kt, k, f"{key}.{k}"): coerce(vt, v, f"{key}.{k}") for k, v in value.items()}
    return _coerce_scalar(tp, value, key)


_DECIMAL = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


def _coerce_union(tp: Any, args: tuple, value: Any, key: str) -> Any:
    if value is None and type(None) in args:
        return None
    options = [a for a in args if a is not type(None)]
    for option in options:
        try:
            return coerce(option, value, key)
        except SpecError:
            precise = len(options) == 1 or (isinstance(value, Mapping) and _is_mapping_type(option))
            if precise:
                raise
    raise SpecError(f"expected {_name(tp)}, got {shown(value)}", key=key)


def _coerce_scalar(tp: Any, value: Any, key: str) -> Any:
    if tp is float and isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        return float(value)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (bool, str) and isinstance(value, tp):
        return value
    if tp in (bool, int, float, str, type(None)):
        raise SpecError(f"expected {_name(tp)}, got {shown(value)}", key=key)
    return value


def _is_mapping_type(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp) or typing.get_origin(tp) in (dict, Mapping)


_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    type(None): "null",
}


def _name(tp: Any) -> str:
    """A type as a reader knows it: ``a number``, ``a list of strings``, ``a mapping (DPConfig
    settings)``."""
    origin = typing.get_origin(tp)
    if tp in _NAMES:
        return _NAMES[tp]
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_name(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return f"a mapping ({tp.__name__} settings)"  # type: ignore[union-attr]
    if origin in (list, tuple):
        return "a list"
    if origin in (dict, Mapping):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where and key else where or key
