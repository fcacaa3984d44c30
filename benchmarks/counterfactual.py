"""Leave-K-out counterfactual benchmark (docs/method.md §7; the AbU paper's Table 1 at demo scale).

Trains the base model (8x8, 64 demo corpus images: 8 photos x 8 views), generates the queries, ranks the training
set with unlearning, the demo feature spaces and random removal, retrains without each top-K (paired: the base
model's own batch sequence, removed images' slots given kept ones; ``--no-paired`` retrains from scratch on the
rest), and prints the table (also written with a CSV and a ΔL-vs-K plot to ``benchmarks/results/counterfactual/``,
or ``counterfactual_unpaired/``). Resumable: run it again after an interrupt. ``--validation`` runs the validation
queries (for any choice of settings; never reported).

    python benchmarks/counterfactual.py [--validation] [--no-paired] [--device cuda]
"""

from __future__ import annotations

import argparse
import logging
import platform
import time

import torch


def main() -> None:
    from attribution_core.cli.common import add_config_args, config_from_args
    from attribution_core.counterfactual import CounterfactualConfig, run_counterfactual, write_report
    from attribution_core.counterfactual.run import default_output
    from attribution_core.demo import build_demo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_args(parser, CounterfactualConfig)
    config = config_from_args(CounterfactualConfig, parser.parse_args())
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build_demo(progress=True)
    started = time.perf_counter()
    rows = run_counterfactual(config)
    table = write_report(rows, default_output(config))
    device = torch.cuda.get_device_name() if config.device == "cuda" else f"{platform.processor() or 'CPU'}"
    print(
        f"\n{len(rows)} measured rows; this run took {time.perf_counter() - started:.0f} s on {device} "
        f"({torch.get_num_threads()} threads)\n"
    )
    print(table)


if __name__ == "__main__":
    main()
