"""``attribute calibrate``: fit a space's calibrator on the ground truth of a test case's customised models and
report it on the held-out half (docs/method.md §3; ``evaluate/ground_truth.py``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .common import root_of

log = logging.getLogger(__name__)

DEFAULT_TEST_CASE = "dataset/json/test_demo_diffusion.json"


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..calibration import save_calibrator
    from ..errors import AttributionError
    from ..evaluate import read_test_case
    from ..evaluate.ground_truth import fit_on_ground_truth, ground_truth_queries
    from ..evaluate.testcase import first_per_type
    from ..paths import display_path
    from ..registry import create_attributor

    tc = read_test_case(args.test_case)
    if args.max_per_type is not None:
        tc = first_per_type(tc, args.max_per_type)
    print("| space | method | fit / held-out images | mass on exemplars: as loaded → fitted | loss: as loaded → fitted "
          "| fitted calibrator |")  # fmt: skip
    print("|---|---|---:|---:|---:|---|")
    written: list[Path] = []
    for name in args.space:
        attributor = create_attributor(name, device=args.device, progress=not args.quiet)
        (result,) = attributor.evaluate([tc], root_of(args), progress=not args.quiet, scores_top=args.top)
        try:
            fit = fit_on_ground_truth(
                ground_truth_queries(result.ranks), attributor.influence, getattr(attributor, "calibrator", None),
                args.top, not args.quiet,
            )  # fmt: skip
        except ValueError as exc:
            raise AttributionError(f"{display_path(tc.path)}: {exc}") from None
        before = "—" if fit.loss_before is None else f"{fit.loss_before:.3f}"
        print(
            f"| {name} | {attributor.method} | {fit.fit_queries} / {fit.held_out_queries} | "
            f"{fit.mass_before:.3f} → {fit.mass_after:.3f} | {before} → {fit.loss_after:.3f} | "
            f"{fit.calibrator.describe()} |"
        )
        if args.out_dir:
            written.append(Path(args.out_dir) / f"{name}.safetensors")
            save_calibrator(fit.calibrator, written[-1])
    for path in written:
        print(f"wrote {display_path(path)}")
    if written:
        print("(name one as a space's calibrator to use it)")
    return 0


def add_commands(command) -> None:
    """Register ``calibrate``."""
    from ..constants import DEFAULT_DEVICE, DEVICE_HELP

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
