"""The one plug-in point: registered spaces and attribution methods, and ``create_attributor``.

In the style of timm's model registry: a method is an :class:`~attribution_core.attribute.interface.Attributor` subclass
registered under its name (``register_method``); a space is a :class:`~attribution_core.attribute.spaces.SpaceSpec`
registered under its name (``register_space``) and answered by one method. The CLI, the explorer and
``attribute evaluate`` only ever go through :func:`get_space`, :func:`list_spaces` and :func:`create_attributor`.

Spaces come from three places: the library (``clip``/``dino`` here, the demo spaces from ``demo``), files users
write (``spaces.toml`` or ``spaces.json`` in the project root, and every file in ``$ATTRIBUTION_SPACES``), and
plug-ins: modules named in ``$ATTRIBUTION_PLUGINS`` (comma-separated) or installed with an
``attribution_core.plugins`` entry point, imported once, which call ``register_method``/``register_space``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .attribute.calibration import Calibrator
from .attribute.interface import Attributor
from .attribute.judge import Judge
from .attribute.spaces import SpaceSpec, SpaceStatus
from .core.config import options_dict, parse_options
from .core.errors import AttributionError, SpaceNotReadyError
from .core.paths import display_path, project_root
from .core.plugins import load_plugins, plugin_note

log = logging.getLogger(__name__)

SPACES_ENV = "ATTRIBUTION_SPACES"

_METHODS: dict[str, type[Attributor]] = {}
#: Methods registered by module name, imported on first use (a method whose imports are heavy, e.g. diffusers).
_LAZY_METHODS: dict[str, str] = {}
#: The ``Options`` of lazily registered methods, as "module:Class" in a light module (checking a spaces file must
#: not import a heavy method).
_LAZY_OPTIONS: dict[str, str] = {}
_SPACES: dict[str, SpaceSpec] = {}
#: Functions that list spaces whose paths depend on the project root at call time (it can change at run time); a
#: "module:function" string is imported on first use.
_PROVIDERS: list[Callable[[], Iterable[SpaceSpec]] | str] = []
_BUILTIN_LOADED = False
_JUDGES: dict[str, type[Judge]] = {}
#: Judges registered by module name, imported on first use.
_LAZY_JUDGES: dict[str, str] = {}
#: Testbeds of the counterfactual judges: a name -> a class, or "module:Class" imported on first use.
_TESTBEDS: dict[str, Any] = {}


def load_parts() -> None:
    """The built-in parts (``builtin``, once), then plug-ins: what every look-up in a registry reads first."""
    global _BUILTIN_LOADED
    if not _BUILTIN_LOADED:
        _BUILTIN_LOADED = True
        from .builtin import JUDGES, METHODS, SPACE_PROVIDERS, TESTBEDS

        for name, (module, options) in METHODS.items():
            register_lazy_method(name, module, options)
        _PROVIDERS[:0] = [p for p in SPACE_PROVIDERS if p not in _PROVIDERS]
        for name, module in JUDGES.items():
            _LAZY_JUDGES.setdefault(name, module)
        for name, where in TESTBEDS.items():
            _TESTBEDS.setdefault(name, where)
    load_plugins()


def _provider(p: Callable[[], Iterable[SpaceSpec]] | str) -> Callable[[], Iterable[SpaceSpec]]:
    if isinstance(p, str):
        module, name = p.split(":")
        return getattr(importlib.import_module(module), name)
    return p


def register_method(cls: type[Attributor]) -> type[Attributor]:
    """Register an attribution method under ``cls.method`` (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Attributor)):
        raise TypeError(f"register_method takes an Attributor subclass, not {cls!r}")
    if not cls.method:
        raise ValueError(f"{cls.__name__} must set the class attribute 'method' to register")
    _METHODS[cls.method] = cls
    return cls


def register_lazy_method(name: str, module: str, options: str | None = None) -> None:
    """Register method ``name`` as provided by ``module``, which is imported (and registers the class with
    :func:`register_method`) only when the method is first looked up: importing the library, or querying a space
    of another method, never pays for that module's imports. ``options``: where its ``Options`` dataclass lives
    ("module:Class"), so that spaces files are checked without importing ``module``."""
    if name not in _METHODS:
        _LAZY_METHODS[name] = module
        if options:
            _LAZY_OPTIONS[name] = options


def method_options(name: str) -> type | None:
    """The ``Options`` dataclass of method ``name`` (None when it declares none), without importing a lazily
    registered method's own module when its options live elsewhere."""
    load_parts()
    if name not in _METHODS and name in _LAZY_OPTIONS:
        module, cls = _LAZY_OPTIONS[name].split(":")
        return getattr(importlib.import_module(module), cls)
    return method_class(name).Options


def register_space(spec: SpaceSpec) -> SpaceSpec:
    """Register (or replace) a space under ``spec.name``."""
    _SPACES[spec.name] = spec
    return spec


def register_space_provider(provider: Callable[[], Iterable[SpaceSpec]]) -> Callable[[], Iterable[SpaceSpec]]:
    """Register a function that lists spaces (called on every look-up, so its paths follow the project root)."""
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)
    return provider


def list_methods() -> list[str]:
    load_parts()
    return sorted({*_METHODS, *_LAZY_METHODS})


def method_class(name: str) -> type[Attributor]:
    """The Attributor class registered as ``name`` (importing its module first when it was registered lazily)."""
    load_parts()
    if name not in _METHODS and name in _LAZY_METHODS:
        importlib.import_module(_LAZY_METHODS.pop(name))
    try:
        return _METHODS[name]
    except KeyError:
        raise AttributionError(
            f"unknown attribution method {name!r}; known methods: {', '.join(list_methods())}{plugin_note()}"
        ) from None


def all_spaces() -> list[SpaceSpec]:
    """Every space this installation knows, ready or not: built-in, registered, then user-declared."""
    load_parts()
    specs = {s.name: s for provider in _PROVIDERS for s in _provider(provider)()}
    specs.update(_SPACES)
    for spec in user_spaces():
        specs[spec.name] = spec
    return list(specs.values())


def get_space(name: str) -> SpaceSpec:
    """The space called ``name`` (or labelled so)."""
    specs = all_spaces()
    for spec in specs:
        if spec.name == name or spec.label == name:
            return spec
    known = ", ".join(s.name for s in specs)
    raise AttributionError(f"unknown space {name!r}; known spaces: {known} (see `attribute spaces`){plugin_note()}")


def space_status(spec: SpaceSpec) -> SpaceStatus:
    """Which of the space's parts are missing, as its method judges."""
    return SpaceStatus(spec, tuple(method_class(spec.method).missing(spec)))


def list_spaces() -> list[SpaceStatus]:
    """Every space with what it still lacks."""
    return [space_status(s) for s in all_spaces()]


def space_record(status: SpaceStatus) -> dict[str, Any]:
    """A space as JSON, the one shape every door lists it in (``attribute spaces --json``, ``/v1/spaces``); fields
    are only ever added."""
    spec, caps = status.spec, method_class(status.spec.method).capabilities
    return {
        "name": spec.name,
        "label": spec.label,
        "method": spec.method,
        "backbone": spec.backbone,
        "ready": status.ready,
        "missing": list(status.missing),
        "make_ready": spec.make_ready,
        "description": spec.description,
        "needs_prompt": caps.needs_prompt,
        "interactive": caps.interactive,
        "uses_prompt": caps.uses_prompt,
        "batchable": caps.batchable,
        "training_set": spec.trained_on,
        "generator": spec.generator,
    }


#: The spaces a query goes to when none is named, first ready one first: the authors' tuned CLIP, else the demo.
DEFAULT_SPACES = ("clip", "demo_efficientnet_lite0")


def default_space(statuses: Iterable[SpaceStatus] | None = None) -> str:
    """The name of the space used when none is named: the first ready one of DEFAULT_SPACES (else the last)."""
    ready = {s.spec.name for s in (statuses if statuses is not None else list_spaces()) if s.ready}
    return next((name for name in DEFAULT_SPACES if name in ready), DEFAULT_SPACES[-1])


def require_ready(spec: SpaceSpec) -> None:
    """Raise a clear error naming the missing parts and the command that makes the space ready."""
    status = space_status(spec)
    if not status.ready:
        hint = f"; run: {spec.make_ready}" if spec.make_ready else ""
        raise SpaceNotReadyError(f"space {spec.name!r} is not ready: missing {', '.join(status.missing)}{hint}")


def create_attributor(space: str | SpaceSpec, method_options: dict | None = None, **options: Any) -> Attributor:
    """The loaded Attributor for a space (by name or spec): checks readiness, then ``method.load(spec, ...)``.

    Args:
        method_options: settings over the space's ``options`` (checked by the method's ``Options``; nested tables
            such as unlearning's ``config`` are merged key by key).
        options: passed to the method's ``load`` (``device``, ``progress``, ``index_kind``, …); methods ignore
            what they do not use.
    """
    spec = get_space(space) if isinstance(space, str) else space
    if method_options:
        spec = replace(spec, options=merged_options(spec.options, method_options))
        method_class(spec.method).options_of(spec)  # a one-line error naming the space, before anything loads
    require_ready(spec)
    return method_class(spec.method).load(spec, **options)


def merged_options(base: dict, override: dict) -> dict:
    """``override`` over ``base``, nested tables merged key by key."""
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            merged_options(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


# --- judges -----------------------------------------------------------------------------------------------


def register_judge(cls: type[Judge]) -> type[Judge]:
    """Register a judge under ``cls.name`` (usable as a class decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} must set the class attribute 'name' to register")
    _JUDGES[cls.name] = cls
    _LAZY_JUDGES.pop(cls.name, None)
    return cls


def list_judges() -> list[str]:
    load_parts()
    return sorted({*_JUDGES, *_LAZY_JUDGES})


def judge_class(name: str) -> type[Judge]:
    """The judge registered as ``name`` (importing its module first when it was registered lazily)."""
    load_parts()
    if name not in _JUDGES and name in _LAZY_JUDGES:
        importlib.import_module(_LAZY_JUDGES[name])
    try:
        return _JUDGES[name]
    except KeyError:
        raise AttributionError(
            f"unknown judge {name!r}; known judges: {', '.join(list_judges())}{plugin_note()}"
        ) from None


def register_testbed(name: str, cls: Any) -> Any:
    """Register a testbed class (a ``judges.counterfactual.testbed.Testbed``) under ``name``."""
    _TESTBEDS[name] = cls
    return cls


def list_testbeds() -> list[str]:
    load_parts()
    return sorted(_TESTBEDS)


def create_testbed(name: str) -> Any:
    """A new instance of the testbed registered as ``name``."""
    load_parts()
    if name not in _TESTBEDS:
        raise AttributionError(f"unknown testbed {name!r}; known testbeds: {', '.join(list_testbeds())}{plugin_note()}")
    cls = _TESTBEDS[name]
    if isinstance(cls, str):
        module, attr = cls.split(":")
        cls = _TESTBEDS[name] = getattr(importlib.import_module(module), attr)
    return cls()


# --- user-declared spaces ---------------------------------------------------------------------------------


def user_space_files() -> list[Path]:
    """``spaces.toml``/``spaces.json`` in the project root, then every file in ``$ATTRIBUTION_SPACES``."""
    root = project_root()
    files = [p for p in (root / "spaces.toml", root / "spaces.json") if p.is_file()]
    files += [Path(p).expanduser() for p in os.environ.get(SPACES_ENV, "").split(os.pathsep) if p]
    return files


#: Parsed spaces files by (path, modification time, size): a file is read again only when it changed.
_FILE_CACHE: dict[tuple[str, int, int], list[SpaceSpec]] = {}


def user_spaces() -> list[SpaceSpec]:
    """The spaces every user file declares; each file is parsed once per modification (a look-up reads no file that
    did not change)."""
    out: list[SpaceSpec] = []
    for path in user_space_files():
        try:
            st = path.stat()
        except OSError:
            out += load_spaces_file(path)  # its own one-line error
            continue
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        if key not in _FILE_CACHE:
            for old in [k for k in _FILE_CACHE if k[0] == key[0]]:
                del _FILE_CACHE[old]
            _FILE_CACHE[key] = load_spaces_file(path)
        out += _FILE_CACHE[key]
    return out


_PATH_FIELDS = ("store", "mapper", "image_root", "backbone_weights", "corpus_store")
#: What each field of a spaces-file entry must be (checked before anything is resolved): the type and how to say it.
_FIELD_KINDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    **{k: (str, "a path (a string, relative to the spaces file)") for k in _PATH_FIELDS},
    **{
        k: (str, "a string")
        for k in ("label", "backbone", "make_ready", "description", "method", "training_set", "generator")
    },
    "demo": (bool, "true or false"),
    "options": (dict, "a table of options"),
    "calibrator": ((str, dict), "a calibrator file or a table {inv_tau, bias}"),
}


def load_spaces_file(path: Path | str) -> list[SpaceSpec]:
    """Spaces declared in a TOML (``[[spaces]]`` tables) or JSON (``{"spaces": [...]}`` or a list) file.

    Relative paths are resolved against the file's folder. ``calibrator`` is a file or ``{inv_tau, bias}``.

    Raises:
        AttributionError: unreadable file or an entry without the needed fields, naming the file and entry.
    """
    path = Path(path)
    shown = display_path(path)
    try:
        text = path.read_text()
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except FileNotFoundError:
        raise AttributionError(f"{shown}: spaces file not found (named in ${SPACES_ENV}?)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise AttributionError(f"{shown}: not a valid {path.suffix.lstrip('.') or 'spaces'} file ({exc})") from None
    entries = raw.get("spaces", raw.get("space", [])) if isinstance(raw, dict) else raw
    if not isinstance(entries, list):
        raise AttributionError(f"{shown}: expected a list of spaces ([[spaces]] tables or a JSON list)")
    return [_spec_from_entry(entry, i, path.parent.resolve(), shown) for i, entry in enumerate(entries)]


def _spec_from_entry(entry: object, i: int, base: Path, shown: str) -> SpaceSpec:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise AttributionError(f"{shown}: space {i} needs a 'name'")
    fields = set(SpaceSpec.__dataclass_fields__)
    unknown = sorted(set(entry) - fields)
    if unknown:
        raise AttributionError(
            f"{shown}: space {entry['name']!r} has unknown fields {unknown}; known: {sorted(fields)}"
        )
    values: dict[str, Any] = dict(entry)
    values.setdefault("label", entry["name"])
    values.setdefault("description", f"declared in {shown}")
    for key, value in values.items():
        expected = _FIELD_KINDS.get(key)
        empty_path = key in _PATH_FIELDS and value == ""
        if expected is not None and value is not None and (not isinstance(value, expected[0]) or empty_path):
            raise AttributionError(
                f"{shown}: space {entry['name']!r}: {key} must be {expected[1]}, not {json.dumps(value, default=str)}"
            )
    for key in _PATH_FIELDS:
        if values.get(key) is not None:
            values[key] = (base / Path(values[key]).expanduser()).resolve()
    options = method_options(values.get("method", "feature"))
    if options is not None and "options" in values:  # checked and its paths resolved against the file, once
        parsed = options_dict(
            parse_options(options, values["options"], base, f"{shown}: space {entry['name']!r} options")
        )
        values["options"] = {k: parsed[k] for k in values["options"]}
    cal = values.get("calibrator")
    try:
        if isinstance(cal, dict):
            values["calibrator"] = Calibrator(float(cal["inv_tau"]), float(cal.get("bias", 0.0)))
        elif isinstance(cal, str):
            values["calibrator"] = (base / cal).resolve()
        return SpaceSpec(**values)
    except (KeyError, TypeError, ValueError) as exc:
        raise AttributionError(f"{shown}: space {entry['name']!r}: {exc}") from None
