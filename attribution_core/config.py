"""Typed option dataclasses: each field carries its default and help once; front doors generate flags from them."""

from __future__ import annotations

import dataclasses
from typing import Any


def option(default: Any, help: str, flag: str | None = None) -> Any:
    """A config field with its command-line help (and flag, when it differs from ``--field-name``)."""
    return dataclasses.field(default=default, metadata={"help": help, **({"flag": flag} if flag else {})})


def flag_of(f: dataclasses.Field) -> str:
    """The command-line flag of a config field."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")
