"""What every subcommand shares: global options, backbone and space arguments, flags generated from config
dataclasses, and printing a ranking."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ..attribute import AttributionResult
from ..config import flag_of
from ..paths import display_path, project_root

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
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")


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
    return config(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def resolve_space(args: argparse.Namespace):
    from ..registry import get_space, space_status
    from ..spaces import custom_space

    if args.space:
        base = get_space(args.space)
    elif args.feats and args.backbone:
        base = None
    else:
        base = get_space("clip")
        if not space_status(base).ready:
            base = get_space("demo_efficientnet_lite0")
    return custom_space(base, args.backbone, args.feats, args.mapper, args.calibrator, args.weights)


def root_of(args: argparse.Namespace) -> Path:
    return Path(args.root).resolve() if getattr(args, "root", None) else project_root()


def print_ranking(result: AttributionResult) -> None:
    """Rank, influence, score and path of each attributed image, then the remaining influence."""
    for a in result.results:
        caption = f"  “{a.caption}”" if a.caption else ""
        url = f"  <{a.url}>" if a.url else ""
        print(f"  {a.rank:4d}  {a.influence * 100:6.2f}%  score {a.score:.4f}  {display_path(a.path)}{caption}{url}")
    print(f"  remaining influence: {result.remaining_influence * 100:.2f}%")


def print_results(results: list[AttributionResult], args: argparse.Namespace) -> None:
    """``--csv``, ``--json`` or the readable ranking with each query's heading (method, timings)."""
    import sys

    from ..attribute import results_to_csv, results_to_jsonl

    if args.csv:
        sys.stdout.write(results_to_csv(results))
    elif args.json:
        sys.stdout.write(results_to_jsonl(results))
    else:
        for r in results:
            timings = ", ".join(f"{stage} {ms / 1000:.1f} s" for stage, ms in r.timings_ms.items() if ms >= 1000)
            prompt = f"“{r.extras['prompt']}”; " if "prompt" in r.extras else ""
            print(f"{r.query}  [{r.space}; {prompt}{r.describe()}{'; ' + timings if timings else ''}]")
            print_ranking(r)
