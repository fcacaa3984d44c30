"""What every subcommand shares: global options, backbone and space arguments, flags generated from config
dataclasses, and printing a ranking."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ..attribute.interface import AttributionResult
from ..core.config import check_ranges, flag_of
from ..core.paths import display_path, project_root

Command = Any  # a subparsers action's add_parser, as passed to each module's ``add_commands``


def global_options(default: Any) -> argparse.ArgumentParser:
    """``-q``/``-v``; on subcommands their default is SUPPRESS, so a value given before the subcommand stays."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress bars or progress logs")
    p.add_argument("-v", "--verbose", action="store_true", default=default, help="more detail (e.g. skipped files)")
    return p


def add_backbone_args(p: argparse.ArgumentParser | argparse._ArgumentGroup, download: bool = True) -> None:
    """``--weights``, ``--device`` (and ``--download``): how a backbone is loaded, the same on every command."""
    p.add_argument("--weights", help="backbone weights file (default: weights/pretrained/ or the library cache)")
    if download:
        p.add_argument("--download", action="store_true", help="let open_clip/timm download backbone weights if absent")
    add_device_arg(p)


def add_device_arg(p: argparse.ArgumentParser | argparse._ArgumentGroup, what: str = "") -> None:
    """``--device``: the one default and help text of every command."""
    from ..core.device import DEFAULT_DEVICE, DEVICE_HELP

    p.add_argument(
        "--device",
        default=DEFAULT_DEVICE,
        help=f"{what}{': ' if what else ''}{DEVICE_HELP} (default: {DEFAULT_DEVICE})",
    )


def add_index_params(p: argparse.ArgumentParser, query_time: bool) -> None:
    """One flag per parameter the registered index kinds declare: their query-time ones (``attribute query``) or
    their build ones (``attribute index``); name, type, choices and help come from the kind."""
    from ..index import get_index_kind, list_index_kinds

    seen: dict[str, list[str]] = {}
    params = {}
    for kind in list_index_kinds():
        for param in get_index_kind(kind).params:
            if param.query_time == query_time:
                seen.setdefault(param.name, []).append(kind)
                params.setdefault(param.name, param)
    for name, param in params.items():
        p.add_argument(
            param.flag,
            dest=f"index_{name}",
            type=param.type,
            choices=param.choices or None,
            help=param.help.replace("%", "%%"),
            metavar=None if param.choices else name.upper(),
        )


def index_params_from_args(args: argparse.Namespace, kind: str, query_time: bool) -> dict:
    """The index parameters given as flags, checked against ``kind`` (a flag the kind does not take is a one-line
    error naming the kinds that do)."""
    from ..core.errors import AttributionError
    from ..index import get_index_kind, list_index_kinds

    given = {k.removeprefix("index_"): v for k, v in vars(args).items() if k.startswith("index_") and v is not None}
    cls = get_index_kind(kind)
    declared = {p.name for p in cls.params if p.query_time == query_time}
    for name in given:
        if name not in declared:
            takers = [k for k in list_index_kinds() if any(p.name == name for p in get_index_kind(k).params)]
            option = "--index" if query_time else "--kind"
            flag = "--" + name.replace("_", "-")
            raise AttributionError(
                f"{flag} goes with {option} {' or '.join(takers)} (this {'query' if query_time else 'index'} uses "
                f"{option} {kind})"
            )
    return cls.parse_params(given)


METHOD_OPTION = "method_option:"


def add_method_options(p: argparse.ArgumentParser) -> None:
    """One flag per field of every registered method's ``Options`` (nested tables flattened: unlearning's
    ``config.steps`` is ``--steps``), in a group per method; a flag two methods share (``--model``) is one flag that
    sets the option of whichever method the space has; a flag another argument already has is left to it."""
    import typing

    from ..registry import list_methods, method_options

    owners: dict[str, dict[str, str]] = {}  # flag -> {method: option path}
    actions: dict[str, argparse.Action] = {}

    def add(group, cls: type, method: str, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                add(group, hints[f.name], method, f"{prefix}{f.name}.")
                continue
            if f.name == getattr(cls, "EXTRA", None):
                continue  # keys checked by the class (e.g. index parameters: flags of their own)
            flag = flag_of(f)
            if flag in owners:  # shared with an earlier method: the same flag sets this method's option too
                owners[flag][method] = f"{prefix}{f.name}"
                continue
            kind = next((t for t in (int, float) if t in (hints[f.name], *typing.get_args(hints[f.name]))), str)
            try:
                actions[flag] = group.add_argument(
                    flag,
                    dest=f"{METHOD_OPTION}{flag}",
                    type=kind,
                    default=argparse.SUPPRESS,
                    help=f"{f.metadata.get('help', '')} (default: the space's)".replace("%", "%%"),
                    metavar=f.name.upper(),
                )
            except argparse.ArgumentError:
                continue  # the flag already belongs to another argument (e.g. --device, --index)
            owners[flag] = {method: f"{prefix}{f.name}"}

    for method in list_methods():
        options = method_options(method)
        if options is not None:
            add(p.add_argument_group(f"options of {method} spaces"), options, method, "")
    for flag, methods in owners.items():
        if len(methods) > 1:
            actions[flag].help = actions[flag].help.replace(
                " (default", f" (also of {', '.join(list(methods)[1:])} spaces; default", 1
            )
    p.set_defaults(**{f"{METHOD_OPTION}owners": owners})


def method_options_from_args(args: argparse.Namespace, method: str, space: str) -> dict:
    """The method options given as flags, as a nested table for ``create_attributor(method_options=...)``; a flag of
    another method is a one-line error."""
    from ..core.errors import AttributionError

    owners = getattr(args, f"{METHOD_OPTION}owners", {})
    out: dict = {}
    for dest, value in vars(args).items():
        if not dest.startswith(METHOD_OPTION) or dest == f"{METHOD_OPTION}owners":
            continue
        flag = dest.removeprefix(METHOD_OPTION)
        paths = owners.get(flag, {})
        if method not in paths:
            raise AttributionError(
                f"{flag} is an option of {' and '.join(paths)} spaces; space {space!r} is a {method} space"
            )
        *tables, name = paths[method].split(".")
        target = out
        for table in tables:
            target = target.setdefault(table, {})
        target[name] = value
    return out


def add_space_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("space (a named space, optionally with parts replaced)")
    g.add_argument("--space", help="named space (see `attribute spaces`); default: clip when ready, else the demo")
    g.add_argument("--backbone", help="backbone name (with --feats, makes a custom space)")
    g.add_argument("--feats", help="feature store folder, or a released {feats, paths} .pth file")
    g.add_argument("--mapper", help="released-format head checkpoint (real + synth mapper), or 'identity'")
    g.add_argument("--calibrator", help="released-format calibrator checkpoint")
    add_backbone_args(g)


def add_config_args(p: argparse.ArgumentParser, config: type) -> None:
    """One flag per field of a config dataclass: its type, default and help come from the dataclass."""
    for f in dataclasses.fields(config):
        default = " ".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        help_text = f"{f.metadata['help']} (default {default!s})".replace("%", "%%")
        if str(f.type) == "bool":
            p.add_argument(
                flag_of(f),
                dest=f"config_{f.name}",
                action=argparse.BooleanOptionalAction,
                default=f.default,
                help=help_text,
            )
            continue
        kinds = {"int": int, "float": float, "str": str}
        if str(f.type).startswith("tuple["):  # tuple[int, ...] -> several values after one flag
            kind = kinds.get(str(f.type)[6:].split(",")[0], str)
            p.add_argument(
                flag_of(f),
                dest=f"config_{f.name}",
                type=kind,
                nargs="+",
                default=f.default,
                help=help_text,
                metavar=f.name.upper().rstrip("S"),
            )
            continue
        p.add_argument(
            flag_of(f),
            dest=f"config_{f.name}",
            type=kinds.get(str(f.type), str),
            default=f.default,
            help=help_text,
            metavar=f.name.upper(),
        )


def config_from_args(config: type, args: argparse.Namespace) -> Any:
    """The config dataclass filled from the flags :func:`_add_config_args` made."""
    values = {f.name: getattr(args, f"config_{f.name}") for f in dataclasses.fields(config)}
    return check_ranges(config(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}))


def resolve_space(args: argparse.Namespace):
    from ..attribute.spaces import custom_space
    from ..registry import default_space, get_space

    if args.space:
        base = get_space(args.space)
    elif args.feats and args.backbone:
        base = None
    else:
        base = get_space(default_space())
    return custom_space(base, args.backbone, args.feats, args.mapper, args.calibrator, args.weights)


def root_of(args: argparse.Namespace) -> Path:
    return Path(args.root).resolve() if getattr(args, "root", None) else project_root()


def printable(text: str, limit: int = 300) -> str:
    """``text`` safe for a terminal: control characters (escape sequences, CR, NUL, …) shown escaped, never
    obeyed, and a long text cut with an ellipsis (a prompt or caption read from a file is not trusted)."""
    import unicodedata

    out = "".join(
        ch if unicodedata.category(ch)[0] != "C" or ch == " " else ch.encode("unicode_escape").decode() for ch in text
    )
    return out if len(out) <= limit else out[: limit - 1] + "…"


def print_ranking(result: AttributionResult) -> None:
    """Rank, influence, score and path of each attributed image, then the remaining influence."""
    for a in result.results:
        caption = f"  “{printable(a.caption)}”" if a.caption else ""
        url = f"  <{printable(a.url)}>" if a.url else ""
        path = printable(display_path(a.path), 1000)
        print(f"  {a.rank:4d}  {a.influence * 100:6.2f}%  score {a.score:.4f}  {path}{caption}{url}")
    print(f"  remaining influence: {result.remaining_influence * 100:.2f}%")


def print_results(results: list[AttributionResult], args: argparse.Namespace) -> None:
    """``--csv``, ``--json`` or the readable ranking with each query's heading (method, timings)."""
    import sys

    from ..attribute.interface import results_to_csv, results_to_jsonl
    from ..attribute.results import with_paths

    results = [with_paths(r, lambda a: display_path(a.path)) for r in results]  # as the README shows them
    if args.csv:
        sys.stdout.write(results_to_csv(results))
    elif args.json:
        sys.stdout.write(results_to_jsonl(results))
    else:
        for r in results:
            timings = ", ".join(f"{stage} {ms / 1000:.1f} s" for stage, ms in r.timings_ms.items() if ms >= 1000)
            cut = " (cut to the words the model reads)" if r.extras.get("prompt_truncated") else ""
            if r.extras.get("prompt"):
                prompt = f"“{printable(str(r.extras['prompt']))}”{cut}; "
            else:
                prompt = f"{r.extras['note']}; " if r.extras.get("note") else ""
            scored = f"scored {r.extras['scored']} candidates; " if "scored" in r.extras else ""
            timings = f"; {timings}" if timings else ""
            print(f"{printable(r.query, 1000)}  [{r.space}; {prompt}{scored}{r.describe()}{timings}]")
            print_ranking(r)
