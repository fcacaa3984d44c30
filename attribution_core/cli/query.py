"""Subcommands that ask a question: ``query`` (any space), ``unlearn`` (an alias of ``query`` on an unlearning
space), ``spaces``, ``demo``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from ..core.paths import display_path, project_root
from .common import (
    add_config_args,
    add_device_arg,
    add_index_params,
    add_method_options,
    add_space_args,
    config_from_args,
    index_params_from_args,
    method_options_from_args,
    print_ranking,
    print_results,
    resolve_space,
)

log = logging.getLogger(__name__)


def cmd_query(args: argparse.Namespace) -> int:
    from ..attribute.inputs import check_k
    from ..core.images import QUERY_MAX_SIDE, load_rgb
    from ..registry import create_attributor

    k = check_k(args.top_k)
    space = resolve_space(args)
    index_params = index_params_from_args(args, args.index or space.options.get("index", "flat"), query_time=True)
    images = [load_rgb(Path(p), p, QUERY_MAX_SIDE) for p in args.images]  # all checked before any model loads
    attributor = create_attributor(
        space,
        method_options_from_args(args, space.method, space.name),
        device=args.device,
        index_kind=args.index,
        index_params=index_params,
        allow_download=args.download,
        progress=not args.quiet,
    )
    prompts = [args.prompt] * len(images) if args.prompt else None
    print_results(attributor.attribute(images, k, names=list(args.images), prompts=prompts), args)
    return 0


def cmd_unlearn(args: argparse.Namespace) -> int:
    from ..attribute.inputs import check_k
    from ..core.images import QUERY_MAX_SIDE, load_rgb
    from ..demo.diffusion import unlearning_space
    from ..registry import create_attributor
    from ..unlearning import UnlearningConfig

    k = check_k(args.top_k)
    images = [load_rgb(Path(p), p, QUERY_MAX_SIDE) for p in args.images]
    config = config_from_args(UnlearningConfig, args)
    spec = unlearning_space(Path(args.model) if args.model else None)
    settings = dataclasses.asdict(config)
    if not settings.get("candidate_space"):  # the flag's empty default keeps the space's own candidate space
        settings.pop("candidate_space", None)
    attributor = create_attributor(spec, {"config": settings}, device=config.device)
    print_results(attributor.attribute(images, k, names=list(args.images), prompts=[args.prompt] * len(images)), args)
    return 0


def cmd_spaces(args: argparse.Namespace) -> int:
    from ..core.plugins import failed_plugins
    from ..registry import list_spaces, space_record

    statuses = list_spaces()
    if args.json:
        rows = [space_record(s) for s in statuses]
        print(json.dumps(rows, indent=1))
        return 0
    for name, error in failed_plugins().items():
        print(f"{'plug-in ' + name:30s} {'broken':10s} {error}")
    for s in statuses:
        mark = "ready" if s.ready else "not ready"
        print(f"{s.spec.name:30s} {mark:10s} [{s.spec.method}] {s.spec.description}")
        if not s.ready:
            print(f"{'':41s}missing: {', '.join(s.missing)}")
            if s.spec.make_ready:
                print(f"{'':41s}make ready: {s.spec.make_ready}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import EXAMPLE_QUERIES, build_demo, demo_dir
    from ..registry import create_attributor

    spaces = build_demo(progress=not args.quiet, device=args.device, diffusion_test_case=args.with_test_case)
    if args.no_query:
        return 0
    query = demo_dir() / EXAMPLE_QUERIES[0]
    attributor = create_attributor(spaces[0], device=args.device, progress=False)
    r = attributor.attribute([query], 5, names=[display_path(query, project_root())])[0]
    print(f"\nexample: attribute query {r.query} --space {r.space} --top-k 5")
    print_ranking(r)
    return 0


def add_commands(command) -> None:
    """Register ``query``, ``unlearn``, ``spaces`` and ``demo``."""
    from ..index import list_index_kinds
    from ..unlearning import UnlearningConfig

    p = command("query", "attribute generated images to the training set", cmd_query)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", "-k", type=int, default=10, help="training images to list per query (default 10)")
    p.add_argument(
        "--index",
        metavar="KIND",
        help=f"index kind: {', '.join(list_index_kinds())} (default: the space's options.index, else flat)",
    )
    add_index_params(p, query_time=True)
    p.add_argument("--prompt", help="the text prompt of the generated images (methods that need one)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object per query")
    out.add_argument("--csv", action="store_true", help="a CSV table, one row per result")
    add_space_args(p)
    add_method_options(p)

    p = command("unlearn", "attribute generated images by unlearning them from the diffusion model", cmd_unlearn)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--prompt", help="the prompt the images were generated from (default: from the PNG metadata)")
    p.add_argument("--model", help="model folder (default: the demo model, trained on the demo corpus)")
    p.add_argument("--top-k", "-k", type=int, default=10, help="training images to list per query (default 10)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object per query")
    out.add_argument("--csv", action="store_true", help="a CSV table, one row per result")
    add_config_args(p, UnlearningConfig)

    p = command("spaces", "list spaces (every method) and whether each is ready", cmd_spaces)
    p.add_argument("--json", action="store_true")

    p = command("demo", "build the offline demo bundle (idempotent) and answer one demo query", cmd_demo)
    p.add_argument("--no-query", action="store_true", help="only build")
    p.add_argument(
        "--with-test-case",
        action="store_true",
        help="also build the diffusion test case now (10 customised models, about 4 min on 2 cores; otherwise "
        "evaluation builds it on first need)",
    )
    add_device_arg(p)
