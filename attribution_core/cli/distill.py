"""``attribute distill label``: labels for distilled attribution (docs/method.md §9)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .common import add_config_args, config_from_args

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


def cmd_label(args: argparse.Namespace) -> int:
    from ..distill.config import LabelConfig
    from ..distill.labels import default_label_dir, label_queries, read_labels
    from ..errors import AttributionError
    from ..paths import display_path
    from ..registry import create_attributor

    config = config_from_args(LabelConfig, args)
    if config.engine not in ENGINES:
        raise AttributionError(f"--engine must be one of {', '.join(ENGINES)}, not {config.engine!r}")
    settings = {"candidates": config.candidates}
    attributor = create_attributor(config.space, device=config.device, progress=not args.quiet, unlearning=settings)
    if attributor.method != "unlearning":
        raise AttributionError(f"space {config.space!r} is a {attributor.method} space; labels come from unlearning")
    out = Path(args.out) if args.out else default_label_dir(attributor)
    engine = None
    if config.engine == "ray":
        from ..distill.labels_ray import ray_engine

        engine = ray_engine(settings)
    done = label_queries(attributor, config, out, engine, progress=not args.quiet)
    labels = read_labels(out)
    held_out = sum(r["split"] == "validation" for r in labels)
    print(f"labelled {done} queries now; {len(labels)} in {display_path(out)} ({held_out} held out for validation)")
    return 0


def add_commands(command) -> None:
    """Register ``distill label``."""
    from ..distill.config import LabelConfig

    group = command("distill", "distilled attribution: label queries by unlearning (then train a student)", None)
    inner = group.add_subparsers(dest="distill_command", required=True, metavar="ACTION")
    p = command(
        "label",
        "generate queries with the diffusion model and rank their candidates by unlearning (resumable; local or Ray)",
        cmd_label,
        inner,
    )
    p.add_argument("--out", help="label folder (default: feats/distill/labels/<model fingerprint>)")
    add_config_args(p, LabelConfig)
