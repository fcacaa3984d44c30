"""One parameter of an index kind: name, type, help, default and whether it is set at query time; checked with a
one-line error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.errors import AttributionError


@dataclass(frozen=True)
class Param:
    """One parameter of an index kind: a build parameter (a different value means another index: rebuilt), or a
    query-time one (``query_time``: set on the loaded index, never a rebuild). The CLI's flags, the spaces file's
    ``options`` and the service read names, types, defaults and help from here."""

    name: str
    type: type  # int, float or str
    help: str
    default: Any = None  # None: computed from the store's size by the kind's ``default_params``
    choices: tuple[str, ...] = ()
    query_time: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, value: Any, kind: str) -> Any:
        """``value`` checked and converted, or a one-line error naming the kind and the parameter."""
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
                raise AttributionError(f"{kind} index: {self.name} must be a positive integer, not {value!r}")
            value = int(value)
            if value < 1:
                raise AttributionError(f"{kind} index: {self.name} must be a positive integer, not {value!r}")
            return value
        if self.type is float:
            try:
                return float(value)
            except (TypeError, ValueError):
                raise AttributionError(f"{kind} index: {self.name} must be a number, not {value!r}") from None
        if not isinstance(value, str):
            raise AttributionError(f"{kind} index: {self.name} must be a string, not {value!r}")
        if self.choices and value not in self.choices:
            raise AttributionError(f"{kind} index: {self.name} {value!r} is not one of {', '.join(self.choices)}")
        return value
