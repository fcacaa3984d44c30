"""Calibration on ground truth as a registered judge (``attribute judge ground-truth``; ``attribute calibrate`` is its
own door): each space's influence fitted on half of a test case's customised models and reported on the other half
(``ground_truth``), in the one report shape; with ``out_dir``, every fitted calibrator is written there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..attribute.calibration import save_calibrator
from ..attribute.judge import Judge, JudgeReport
from ..core.config import option
from ..core.constants import DEFAULT_DEVICE, DEVICE_HELP
from ..core.errors import AttributionError
from ..core.paths import display_path, project_file, project_root
from ..data.testcase import first_per_type, read_test_case
from ..registry import create_attributor, register_judge
from .abc.protocol import evaluate_space
from .ground_truth import fit_on_ground_truth, ground_truth_queries

DEFAULT_TEST_CASE = "dataset/json/test_demo_diffusion.json"


@dataclass(frozen=True)
class GroundTruthOptions:
    """Options of ``attribute judge ground-truth``."""

    spaces: tuple[str, ...] = option(("demo_distilled",), "spaces to calibrate (any method)")
    test_case: str = option(DEFAULT_TEST_CASE, "test case JSON whose customised models know their exemplars")
    root: str = option("", "folder the test case's paths are relative to (default: the project root)")
    max_per_type: int = option(0, "synthesized images per model and prompt type (0: all)", minimum=0)
    top: int = option(1000, "highest corpus scores per image in the calibrator's loss", minimum=1)
    out_dir: str = option("", "write each fitted calibrator here, as SPACE.safetensors (empty: none)")
    device: str = option(DEFAULT_DEVICE, DEVICE_HELP)


def calibrate_spaces(options: GroundTruthOptions, progress: bool = True) -> tuple[list[dict[str, Any]], list[Path]]:
    """One row per space (fit and held-out sizes, mass on the exemplars and loss as loaded and fitted, the fitted
    calibrator), and the calibrator files written."""
    if options.max_per_type < 0:
        raise AttributionError(f"--max-per-type must be at least 1 (or 0 for all), not {options.max_per_type}")
    tc = read_test_case(project_file(options.test_case))
    if options.max_per_type:
        tc = first_per_type(tc, options.max_per_type)
    root = Path(options.root).resolve() if options.root else project_root()
    rows, written = [], []
    for name in options.spaces:
        attributor = create_attributor(name, device=options.device, progress=progress)
        result = evaluate_space(attributor, tc, root, scores_top=options.top, progress=progress)
        try:
            fit = fit_on_ground_truth(
                ground_truth_queries(result.ranks), attributor.influence, getattr(attributor, "calibrator", None),
                options.top, progress,
            )  # fmt: skip
        except ValueError as exc:
            raise AttributionError(f"{display_path(tc.path)}: {exc}") from None
        rows.append(
            {
                "space": name,
                "method": attributor.method,
                "fit_images": fit.fit_queries,
                "held_out_images": fit.held_out_queries,
                "mass_as_loaded": fit.mass_before,
                "mass_fitted": fit.mass_after,
                "loss_as_loaded": float("nan") if fit.loss_before is None else fit.loss_before,
                "loss_fitted": fit.loss_after,
                "calibrator": fit.calibrator.describe(),
            }
        )
        if options.out_dir:
            written.append(Path(options.out_dir) / f"{name}.safetensors")
            save_calibrator(fit.calibrator, written[-1])
    return rows, written


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table as ``attribute calibrate`` prints it."""
    lines = [
        "| space | method | fit / held-out images | mass on exemplars: as loaded → fitted | loss: as loaded → fitted "
        "| fitted calibrator |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        before = "—" if r["loss_as_loaded"] != r["loss_as_loaded"] else f"{r['loss_as_loaded']:.3f}"
        lines.append(
            f"| {r['space']} | {r['method']} | {r['fit_images']} / {r['held_out_images']} | "
            f"{r['mass_as_loaded']:.3f} → {r['mass_fitted']:.3f} | {before} → {r['loss_fitted']:.3f} | "
            f"{r['calibrator']} |"
        )
    return "\n".join(lines) + "\n"


@register_judge
class GroundTruthJudge(Judge):
    name = "ground-truth"
    description = "fit each space's calibrator on half of a test case's customised models, report the other half"
    Options = GroundTruthOptions

    def run(self, options: GroundTruthOptions, out: Path, progress: bool = True) -> JudgeReport:
        rows, written = calibrate_spaces(options, progress)
        notes = [f"wrote {display_path(p)}" for p in written]
        return JudgeReport(self.name, rows, {**options.__dict__}, markdown(rows), notes)
