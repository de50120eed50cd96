"""JSON in and out of the record dataclasses, checked against their type hints.

`to_json` writes every field of a record (None as null, NaN and inf as null: JSON has neither);
`from_json` builds the dataclass back and checks each value against the field's declared type as
it goes, so a wrong value fails where it is read, with the field's path ("ranks[0].errors.rel_fro
is 'small', not a float") instead of surfacing later as a TypeError far from its cause.

Two field markers shape the JSON without changing the types:
- `flat()`: the field's dataclass is written into its parent's object, key beside key
  (pytest-benchmark's extra_info is one flat dict; the schema still groups its keys by concern);
- `omitted_when_none()`: the key is left out while the value is None (a record holds `figures`
  only when its cell published a timing, as readers of version 2 expect).

Decoding is strict by default: a missing key, an unknown key or a value of the wrong type is a
RecordError. `lenient=True` lets a missing key take the field's declared default: for documents
of an earlier record version (their upgrade says which keys they lacked) and for the plain dicts
that measuring code hands over (NVML snapshots, environment facts), never for a version-3 file.

A plain `float` field reads null as NaN (the writer turned a NaN or inf into null); a
`float | None` field reads it as None.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

from common.errors import RecordError

T = TypeVar("T")

_FLAT = "schema_flat"
_OMIT_NONE = "schema_omit_none"


def flat() -> Any:
    """A dataclass field whose keys are written into the parent's JSON object."""
    return dataclasses.field(metadata={_FLAT: True})


def omitted_when_none() -> Any:
    """An optional field (default None) whose key is left out while it is None."""
    return dataclasses.field(default=None, metadata={_OMIT_NONE: True})


def to_json(value: Any) -> Any:
    """A JSON-ready copy of a record: dataclasses as objects, tuples as lists, NaN/inf as null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if f.metadata.get(_FLAT):
                out.update(to_json(v))
            elif not (v is None and f.metadata.get(_OMIT_NONE)):
                out[f.name] = to_json(v)
        return out
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def from_json(cls: type[T], data: Any, where: str = "", lenient: bool = False) -> T:
    """The `cls` dataclass that `data` (parsed JSON) describes; RecordError names the first
    field that does not fit, its path prefixed with `where`."""
    return typing.cast(T, _decode(cls, data, where, lenient))


def json_keys(cls: type) -> frozenset[str]:
    """The keys of a dataclass's JSON object, flattened fields' keys included."""
    keys: set[str] = set()
    for f in dataclasses.fields(cls):
        if f.metadata.get(_FLAT):
            keys |= json_keys(_hints(cls)[f.name])
        else:
            keys.add(f.name)
    return frozenset(keys)


def float_keys(cls: type) -> frozenset[str]:
    """The JSON keys (flattened included) whose declared type is float or float | None."""
    out: set[str] = set()
    for f in dataclasses.fields(cls):
        hint = _hints(cls)[f.name]
        if f.metadata.get(_FLAT):
            out |= float_keys(hint)
        elif hint is float or set(typing.get_args(hint)) == {float, type(None)}:
            out.add(f.name)
    return frozenset(out)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _fail(where: str, value: Any, wanted: str) -> RecordError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return RecordError(f"field {where or '(document)'} is {shown}, not {wanted}")


def _name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + repr(typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return f"an object ({hint.__name__})"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        hint, str(hint)
    )


def _decode(hint: Any, value: Any, where: str, lenient: bool) -> Any:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _decode_dataclass(hint, value, where, lenient)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        choices = [a for a in args if a is not type(None)]
        if len(choices) == 1:  # X | None: X's own error names the field inside it
            return _decode(choices[0], value, where, lenient)
        for arg in choices:
            try:
                return _decode(arg, value, where, lenient)
            except RecordError:
                continue
        raise _fail(where, value, _name(hint))
    if origin is Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        raise _fail(where, value, _name(hint))
    if origin is list or origin is tuple:
        if not isinstance(value, list):
            raise _fail(where, value, "a list")
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            items = [_decode(args[0], v, f"{where}[{i}]", lenient) for i, v in enumerate(value)]
            return items if origin is list else tuple(items)
        if len(value) != len(args):
            raise _fail(where, value, f"a list of {len(args)} values")
        return tuple(
            _decode(a, v, f"{where}[{i}]", lenient)
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _fail(where, value, "an object")
        return {k: _decode(args[1], v, _path(where, k), lenient) for k, v in value.items()}
    return _decode_scalar(hint, value, where)


def _decode_scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is float:
        if value is None:
            return math.nan  # the writer's NaN or inf
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is bool or hint is str:
        if isinstance(value, hint):
            return value
    elif hint is Any:
        return value
    else:
        raise RecordError(f"field {where}: the schema declares {hint!r}, which JSON cannot hold")
    raise _fail(where, value, _name(hint))


def _decode_dataclass(cls: type, value: Any, where: str, lenient: bool) -> Any:
    if not isinstance(value, dict):
        raise _fail(where, value, _name(cls))
    unknown = sorted(set(value) - json_keys(cls))
    if unknown:
        raise RecordError(
            f"field {_path(where, unknown[0])} is not part of {cls.__name__} "
            f"(fields: {', '.join(sorted(json_keys(cls)))})"
        )
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        hint = _hints(cls)[f.name]
        if f.metadata.get(_FLAT):
            kwargs[f.name] = _decode_dataclass(hint, _only(hint, value), where, lenient)
        elif f.name in value:
            kwargs[f.name] = _decode(hint, value[f.name], _path(where, f.name), lenient)
        elif f.metadata.get(_OMIT_NONE) or (lenient and _has_default(f)):
            continue  # the field's default
        else:
            raise RecordError(f"field {_path(where, f.name)} is missing")
    return cls(**kwargs)


def _only(cls: type, value: dict[str, Any]) -> dict[str, Any]:
    keys = json_keys(cls)
    return {k: v for k, v in value.items() if k in keys}


def _has_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
