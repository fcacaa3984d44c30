"""``attribute distill label|train``: labels for distilled attribution and its student (docs/method.md §9)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .common import add_config_args, config_from_args

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


def cmd_label(args: argparse.Namespace) -> int:
    from ..core.errors import AttributionError
    from ..core.paths import display_path
    from ..distill.config import LabelConfig
    from ..distill.labels import default_label_dir, label_queries, read_labels
    from ..registry import create_attributor, get_space

    config = config_from_args(LabelConfig, args)
    if config.engine not in ENGINES:
        raise AttributionError(f"--engine must be one of {', '.join(ENGINES)}, not {config.engine!r}")
    settings = {"candidates": config.candidates}
    if config.candidate_space:
        settings["candidate_space"] = config.candidate_space
    method = get_space(config.space).method
    if method != "unlearning":
        raise AttributionError(f"space {config.space!r} is a {method} space; labels come from unlearning")
    attributor = create_attributor(config.space, {"config": settings}, device=config.device, progress=not args.quiet)
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


def cmd_train(args: argparse.Namespace) -> int:
    from ..core.device import resolve_device
    from ..core.errors import AttributionError
    from ..core.paths import display_path, project_root
    from ..distill.labels import default_label_dir
    from ..distill.student import StudentConfig
    from ..distill.train import distill
    from ..registry import create_attributor

    config = config_from_args(StudentConfig, args)
    attributor = create_attributor(args.space, device=args.device, progress=not args.quiet)
    if attributor.method != "unlearning":
        raise AttributionError(
            f"space {args.space!r} is a {attributor.method} space; students learn unlearning's labels"
        )
    labels = Path(args.labels) if args.labels else default_label_dir(attributor)
    fingerprint = attributor.model.fingerprint()
    out = Path(args.out) if args.out else project_root() / "feats" / "distill" / "student" / fingerprint
    device = str(resolve_device(args.device))
    report = distill(attributor, labels, out, args.backbone, config, tuple(args.top), device, not args.quiet)
    print(
        f"student trained on {report.train_queries} labelled queries -> {display_path(out)}\n"
        f"AP(L) on {report.validation_queries} held-out queries (the teacher's top L as positives):"
    )
    print("| ranking | " + " | ".join(f"AP({t})" for t in args.top) + " |")
    print("|---|" + "---:|" * len(args.top))
    for name, values in report.average_precision.items():
        print(f"| {name} | " + " | ".join(f"{values[t]:.3f}" for t in args.top) + " |")
    options = attributor.options_of(attributor.spec)
    print(
        '\nto query it, declare a space (spaces.toml):\n[[spaces]]\nname = "my_distilled"\nmethod = "distilled"\n'
        f'backbone = "{args.backbone}"\nstore = "{out / "store"}"\n'
        f'options = {{ student = "{out}", model = "{options.model}" }}'
    )
    return 0


def add_commands(command) -> None:
    """Register ``distill label`` and ``distill train``."""
    from ..core.constants import DEFAULT_DEVICE, DEVICE_HELP
    from ..distill.config import LabelConfig
    from ..distill.student import StudentConfig

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

    p = command(
        "train", "train the student on a label store and report AP(L) on its held-out queries", cmd_train, inner
    )
    p.add_argument("--space", default="demo_unlearning", help="the unlearning space the labels came from")
    p.add_argument("--labels", help="label folder (default: feats/distill/labels/<model fingerprint>)")
    p.add_argument("--out", help="folder for student.safetensors and student.json (default: feats/distill/student/…)")
    p.add_argument("--backbone", default="efficientnet_lite0", help="image features (a registered backbone)")
    p.add_argument("--top", type=int, nargs="+", default=[10, 50], metavar="L", help="AP(L) reported (default 10 50)")
    p.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)
    add_config_args(p, StudentConfig)
