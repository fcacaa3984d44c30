"""Counterfactual benchmarks (docs/counterfactual.md; the AbU paper's Table 1 and the linear datamodeling score at
demo scale).

Leave-K-out (default): trains the base model (8x8, 136 demo corpus images: 17 photos x 8 views), generates the
queries, ranks the training set with unlearning, the demo feature spaces and random removal, retrains without
each top-K (paired: the base model's own batch sequence, removed images' slots given kept ones), and prints the
table (also written with a CSV and a ΔL-vs-K plot to ``benchmarks/results/counterfactual/``). ``--validation``
runs the validation queries (for any choice of settings; never reported).

``--lds``: the linear datamodeling score over M subset retrains shared by every query and method (same base
model); writes ``benchmarks/results/lds/`` (table, CSV, per-query LDS, plots; ``validation/`` for the
validation queries) and prints the reported table with the cost of the run.

Both are resumable: run again after an interrupt.

    python benchmarks/counterfactual.py [--validation] [--no-paired] [--device cuda]
    python benchmarks/counterfactual.py --lds [--subsets 64] [--alpha 0.5] [--device cuda]
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time

import torch


def _device_name(device: str) -> str:
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()} CPU ({torch.get_num_threads()} threads)"


def lds_main(argv: list[str]) -> None:
    from attribution_core.cli.common import add_config_args, config_from_args
    from attribution_core.demo import build_demo
    from attribution_core.judges.counterfactual.config import LdsConfig
    from attribution_core.judges.counterfactual.lds_report import report_lds
    from attribution_core.judges.counterfactual.lds_run import default_lds_output, lds_cache, run_lds
    from attribution_core.registry import create_testbed

    parser = argparse.ArgumentParser(description="linear datamodeling score")
    add_config_args(parser, LdsConfig)
    config = config_from_args(LdsConfig, parser.parse_args(argv))
    build_demo(progress=True)
    started = time.perf_counter()
    cached = {p.name for p in lds_cache().iterdir()} if lds_cache().is_dir() else set()
    testbed = create_testbed(config.testbed)
    out = default_lds_output(config.testbed)
    data = run_lds(config, testbed, out)
    table = report_lds(data, testbed.resolve(config), out)
    trained = {p.name for p in lds_cache().iterdir()} - cached
    print(
        f"\nLDS ({config.track} track) over {len(data.member)} subset models x "
        f"{len(data.reported or data.validation)} queries; this run took {time.perf_counter() - started:.0f} s on "
        f"{_device_name(config.device)}, {len(trained)} models trained in it\n"
    )
    print(table)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if "--lds" in sys.argv[1:]:
        lds_main([a for a in sys.argv[1:] if a != "--lds"])
        return
    from attribution_core.cli.common import add_config_args, config_from_args
    from attribution_core.demo import build_demo
    from attribution_core.judges.counterfactual import CounterfactualConfig, run_counterfactual, write_report
    from attribution_core.judges.counterfactual.run import default_output
    from attribution_core.registry import create_testbed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_args(parser, CounterfactualConfig)
    config = config_from_args(CounterfactualConfig, parser.parse_args())
    build_demo(progress=True)
    started = time.perf_counter()
    rows = run_counterfactual(config, create_testbed(config.testbed))
    table = write_report(rows, default_output(config))
    print(
        f"\n{len(rows)} measured rows; this run took {time.perf_counter() - started:.0f} s on "
        f"{_device_name(config.device)}\n"
    )
    print(table)


if __name__ == "__main__":
    main()
