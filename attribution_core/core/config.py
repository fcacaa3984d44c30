"""Typed option dataclasses: each field carries its default and help once; front doors generate flags from them,
and :func:`parse_options` reads them from a spaces file or a dict (types checked, paths resolved, one-line errors).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

from .errors import AttributionError

#: The default of an option that must be given (no default).
REQUIRED: Any = dataclasses.MISSING


def option(
    default: Any, help: str, flag: str | None = None, path: bool = False, minimum: float | None = None,
    maximum: float | None = None,
) -> Any:  # fmt: skip
    """A config field with its command-line help (and flag, when it differs from ``--field-name``); ``path``: a file
    or folder, resolved against the file that declares it; ``minimum``/``maximum``: the range of a number (of each
    number, for a list), checked by :func:`check_ranges` wherever options come in (flags, spaces files)."""
    metadata = {"help": help, **({"flag": flag} if flag else {}), **({"path": True} if path else {})}
    metadata.update({k: v for k, v in (("minimum", minimum), ("maximum", maximum)) if v is not None})
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=metadata)  # required
    if isinstance(default, (dict, list)) or dataclasses.is_dataclass(default):
        if dataclasses.is_dataclass(default):
            return dataclasses.field(default_factory=lambda: dataclasses.replace(default), metadata=metadata)
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_of(f: dataclasses.Field) -> str:
    """The command-line flag of a config field."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def parse_options(cls: type, raw: Any, base: Path | None = None, where: str = "options") -> Any:
    """An instance of the dataclass ``cls`` from ``raw`` (a dict, or an instance already): unknown keys, wrong types
    and missing required fields are one-line errors that start with ``where``; path fields are resolved against
    ``base`` (the declaring file's folder; the working directory when None).

    Raises:
        AttributionError: naming ``where`` and the field.
    """
    if isinstance(raw, cls):
        return raw
    if not isinstance(raw, dict):
        raise AttributionError(f"{where}: expected a table of options, not {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    extra_field = getattr(cls, "EXTRA", None)  # a dict field that takes the keys no field names, checked by the class
    if extra_field is not None:
        extra = {k: v for k, v in raw.items() if k not in fields}
        raw = {**{k: v for k, v in raw.items() if k in fields}, extra_field: cls.check_extra(raw, extra, where)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise AttributionError(f"{where}: unknown option {', '.join(map(repr, unknown))}; known: {', '.join(fields)}")
    required = [n for n, f in fields.items() if _required(f) and n not in raw]
    if required:
        raise AttributionError(f"{where}: missing option {', '.join(map(repr, required))}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in raw.items():
        f = fields[name]
        values[name] = _parse_value(hints[name], value, f.metadata.get("path", False), base, f"{where}.{name}")
    return check_ranges(cls(**values), where)


def check_ranges(instance: Any, where: str | None = None) -> Any:
    """``instance`` unchanged when every number lies in its field's declared range (nested option tables too).

    Args:
        where: how fields are named in the error: None for command-line flags (``--batch-size``), else a prefix
            (``space 'x'.options``).

    Raises:
        AttributionError: the first number out of range, in one line: the flag or field, the range, the value.
    """
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        name = flag_of(f) if where is None else f"{where}.{f.name}"
        if dataclasses.is_dataclass(value):
            check_ranges(value, None if where is None else name)
            continue
        low, high = f.metadata.get("minimum"), f.metadata.get("maximum")
        if low is None and high is None:
            continue
        for v in value if isinstance(value, tuple) else (value,):
            if (
                isinstance(v, (int, float))
                and not isinstance(v, bool)
                and ((low is not None and v < low) or (high is not None and v > high))
            ):
                bound = f"at least {low}" if high is None else f"at most {high}" if low is None else (
                    f"between {low} and {high}")  # fmt: skip
                raise AttributionError(f"{name} must be {bound}, not {v}")
    return instance


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def options_dict(instance: Any) -> dict[str, Any]:
    """An options instance as plain JSON-able values (paths as strings)."""
    out = {}
    extra_field = getattr(instance, "EXTRA", None)
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        if f.name == extra_field:
            out.update(value)
            continue
        if dataclasses.is_dataclass(value):
            value = options_dict(value)
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def _parse_value(kind: Any, value: Any, is_path: bool, base: Path | None, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(kind)):
            return None
        kind = args[0] if len(args) == 1 else kind
        origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return parse_options(kind, value, base, where)
    if origin is tuple:
        item = typing.get_args(kind)[0]
        if not isinstance(value, (list, tuple)):
            raise AttributionError(f"{where}: expected a list, not {value!r}")
        return tuple(_parse_value(item, v, is_path, base, where) for v in value)
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise AttributionError(f"{where}: expected a table, not {value!r}")
        return dict(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise AttributionError(f"{where}: expected true or false, not {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise AttributionError(f"{where}: expected an integer, not {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise AttributionError(f"{where}: expected a number, not {value!r}")
        return float(value)
    if kind is Path or is_path:
        if not isinstance(value, (str, Path)) or not str(value):
            raise AttributionError(f"{where}: expected a path, not {value!r}")
        path = Path(value).expanduser()
        return ((base / path) if base is not None else path).resolve()
    if kind is str:
        if not isinstance(value, str):
            raise AttributionError(f"{where}: expected a string, not {value!r}")
        return value
    return value
