"""Subcommands of the judges: ``judge NAME`` (any registered judge), and the built-in judges' own commands:
``evaluate`` (the AbC benchmark), ``calibrate`` (calibration on ground truth), ``counterfactual`` (leave-K-out),
``lds`` (the linear datamodeling score)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from ..core.paths import display_path, project_file, project_root
from .common import (
    add_backbone_args,
    add_config_args,
    config_from_args,
    root_of,
)

log = logging.getLogger(__name__)

DEFAULT_EVAL_SPACES = ("demo_efficientnet_lite0", "demo_pixel")
DEFAULT_TEST_CASE = "dataset/json/test_demo_diffusion.json"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..attribute.spaces import custom_space
    from ..core.errors import AttributionError
    from ..demo import ensure_diffusion_test_case
    from ..judges.abc import describe_test_case, format_table, read_test_case, run_evaluation, write_csv, write_ranks
    from ..registry import get_space

    if min(args.ks) < 1:
        raise AttributionError(f"--ks must be at least 1, not {min(args.ks)}")
    if args.max_per_type is not None and args.max_per_type < 1:
        raise AttributionError(f"--max-per-type must be at least 1, not {args.max_per_type}")
    ensure_diffusion_test_case(args.test_cases, progress=not args.quiet)  # the demo's, built on first need
    test_cases = [read_test_case(project_file(p)) for p in args.test_cases]
    if args.max_per_type is not None:
        from ..data.testcase import first_per_type

        test_cases = [first_per_type(tc, args.max_per_type) for tc in test_cases]  # every space, the same queries
    if args.describe:
        for tc in test_cases:
            print(json.dumps(describe_test_case(tc), indent=1))
        return 0
    if args.backbone and args.feats:
        spaces = [custom_space(None, args.backbone, args.feats, args.mapper, args.calibrator, args.weights)]
    else:
        spaces = [
            custom_space(get_space(n), mapper=args.mapper, calibrator=args.calibrator, weights=args.weights)
            for n in args.space or DEFAULT_EVAL_SPACES
        ]
    names = [s.name for s in spaces]
    if args.no_head:  # the raw backbone: the paper's "pretrained" rows
        names = [f"{s.name} (no head)" if s.mapper is not None else s.name for s in spaces]
        spaces = [dataclasses.replace(s, mapper=None) for s in spaces]
    results = run_evaluation(
        test_cases,
        spaces,
        root_of(args),
        ks=args.ks,
        device=args.device,
        progress=not args.quiet,
        influence=args.influence,
        names=names,
    )
    for tc in test_cases:
        rows = [r for t, r in results if t is tc]
        n = sum(len(v) for m in tc.models for v in m.synth.values())
        print(f"\n{tc.name} ({len(tc.models)} models, {n} synthesized images)\n{format_table(tc, rows)}")
    if args.out:
        write_csv(args.out, results)
        print(f"\nwrote {args.out}")
    if args.dump_ranks:
        write_ranks(args.dump_ranks, results)
        print(f"wrote {args.dump_ranks}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..core.config import check_ranges
    from ..core.paths import project_file
    from ..demo import ensure_diffusion_test_case
    from ..judges.ground_truth_judge import GroundTruthOptions, calibrate_spaces, markdown

    if args.max_per_type is not None and args.max_per_type < 1:
        from ..core.errors import AttributionError

        raise AttributionError(f"--max-per-type must be at least 1, not {args.max_per_type}")
    ensure_diffusion_test_case([project_file(args.test_case)], progress=not args.quiet)
    options = GroundTruthOptions(
        spaces=tuple(args.space), test_case=args.test_case, root=args.root or "", top=args.top,
        max_per_type=args.max_per_type or 0, out_dir=args.out_dir or "", device=args.device,
    )  # fmt: skip
    rows, written = calibrate_spaces(check_ranges(options), progress=not args.quiet)
    print(markdown(rows), end="")
    for path in written:
        print(f"wrote {display_path(path)}")
    if written:
        print("(name one as a space's calibrator to use it)")
    return 0


def cmd_counterfactual(args: argparse.Namespace) -> int:
    from ..judges.counterfactual import CounterfactualConfig, run_counterfactual, write_report
    from ..judges.counterfactual.run import default_output
    from ..registry import create_testbed

    config = config_from_args(CounterfactualConfig, args)
    out = Path(args.out) if args.out else default_output(config)
    rows = run_counterfactual(config, create_testbed(config.testbed), out, progress=not args.quiet)
    print(write_report(rows, out), end="")
    return 0


def cmd_lds(args: argparse.Namespace) -> int:
    from ..judges.counterfactual.config import LdsConfig
    from ..judges.counterfactual.lds_report import report_lds
    from ..judges.counterfactual.lds_run import default_lds_output, run_lds, train_lds_models
    from ..registry import create_testbed

    config = config_from_args(LdsConfig, args)
    out = Path(args.out) if args.out else default_lds_output(config.testbed)
    testbed = create_testbed(config.testbed)
    if args.train_only:
        train_lds_models(config, out, testbed, progress=not args.quiet)
        return 0
    data = run_lds(config, testbed, out, progress=not args.quiet)
    print(report_lds(data, testbed.resolve(config), out), end="")
    return 0


def cmd_judge(args: argparse.Namespace) -> int:
    """``attribute judge NAME [options]``: any registered judge, its flags generated from its ``Options``."""
    from ..core.config import options_dict
    from ..judges.report import markdown_table, write_report
    from ..registry import judge_class, list_judges

    if not args.name:
        for name in list_judges():
            print(f"{name}: {judge_class(name).description}")
        return 0
    cls = judge_class(args.name)
    parser = argparse.ArgumentParser(prog=f"attribute judge {args.name}", description=cls.description)
    parser.add_argument("--out", help=f"report folder (default: benchmarks/results/judges/{args.name})")
    add_config_args(parser, cls.Options)
    sub = parser.parse_args(args.options)
    options = config_from_args(cls.Options, sub)
    named = [getattr(options, f, None) for f in ("test_case", "test_cases")]
    files = [project_file(p) for v in named if v for p in ([v] if isinstance(v, str) else v)]
    if files:
        from ..demo import ensure_diffusion_test_case

        ensure_diffusion_test_case(files, progress=not args.quiet)
    out = Path(sub.out) if sub.out else project_root() / "benchmarks" / "results" / "judges" / args.name
    report = cls().run(options, out, progress=not args.quiet)
    if not report.config:
        report.config = options_dict(options)
    files = write_report(report, out)
    print(report.markdown or markdown_table(report.rows), end="")
    for note in report.notes:
        print(note)
    log.info("wrote %s", ", ".join(display_path(f) for f in files))
    return 0


def add_commands(command) -> None:
    """Register ``judge``, ``evaluate``, ``calibrate``, ``counterfactual`` and ``lds``."""
    from ..core.constants import DEFAULT_DEVICE, DEVICE_HELP
    from ..judges.counterfactual.config import CounterfactualConfig, LdsConfig

    p = command("evaluate", "AbC benchmark: Recall@K and mAP of spaces on test-case JSON files", cmd_evaluate)
    p.add_argument(
        "test_cases", nargs="+", metavar="JSON", help="AbC test-case files (e.g. dataset/json/test_demo.json)"
    )
    p.add_argument("--space", action="append", help="named space to evaluate (repeatable; default: the demo spaces)")
    p.add_argument("--backbone", help="backbone of a custom space (with --feats)")
    p.add_argument("--feats", help="corpus store or released {feats, paths} .pth of a custom space")
    p.add_argument("--mapper", help="head checkpoint (released format)")
    p.add_argument("--calibrator", help="calibrator checkpoint (released format), for --influence")
    add_backbone_args(p, download=False)
    p.add_argument("--no-head", action="store_true", help="evaluate the raw backbone (the paper's 'pretrained' rows)")
    p.add_argument("--root", help="folder the JSON's image paths are relative to (default: the project root)")
    p.add_argument("--ks", type=int, nargs="+", default=[5, 10, 100], help="recall cut-offs (default 5 10 100)")
    p.add_argument("--out", help="write the table as CSV")
    p.add_argument("--dump-ranks", metavar="FILE", help="write every synthesized image's exemplar ranks (JSON lines)")
    p.add_argument("--describe", action="store_true", help="only report each test case's structure")
    p.add_argument(
        "--max-per-type",
        type=int,
        help="only the first N synthesized images per model and prompt type, for every space (bounds a slow "
        "method's time; rows stay comparable)",
    )
    p.add_argument(
        "--influence",
        action="store_true",
        help="also report <type>-influence: mean calibrated influence on the true exemplars",
    )

    p = command(
        "calibrate",
        "fit a space's calibrator on a test case's ground truth (customised models and their exemplars)",
        cmd_calibrate,
    )
    p.add_argument("space", nargs="+", help="spaces to calibrate (any method with an AbC protocol)")
    p.add_argument("--test-case", default=DEFAULT_TEST_CASE, help=f"test case JSON (default {DEFAULT_TEST_CASE})")
    p.add_argument("--root", help="folder the test case's paths are relative to (default: the project root)")
    p.add_argument("--max-per-type", type=int, help="synthesized images per model and prompt type (default: all)")
    p.add_argument("--top", type=int, default=1000, help="highest corpus scores per image in the loss (default 1000)")
    p.add_argument("--out-dir", help="write each fitted calibrator here, as SPACE.safetensors")
    p.add_argument("--device", default=DEFAULT_DEVICE, help=DEVICE_HELP)

    p = command(
        "counterfactual",
        "leave-K-out check: retrain without each method's top-K and measure the query's loss (resumable)",
        cmd_counterfactual,
    )
    p.add_argument(
        "--out",
        help="folder for results.jsonl, table.md/.csv, delta_loss.png "
        "(default: benchmarks/results/counterfactual[_validation])",
    )
    add_config_args(p, CounterfactualConfig)

    p = command(
        "lds",
        "linear datamodeling score: every method's scores against the losses of models retrained on random "
        "subsets (shared by all queries and methods; resumable)",
        cmd_lds,
    )
    p.add_argument(
        "--out", help="folder for table.md/.csv, lds.png, scatter.png, validation/ (default: benchmarks/results/lds)"
    )
    p.add_argument("--train-only", action="store_true", help="train the base and subset models, then stop")
    add_config_args(p, LdsConfig)

    p = command("judge", "run a registered judge (its options: attribute judge NAME --help; none: list the judges)",
                cmd_judge)  # fmt: skip
    p.add_argument("name", nargs="?", metavar="NAME", help="the judge (none: list every registered judge)")
    p.add_argument("options", nargs=argparse.REMAINDER, help="the judge's own options")
