"""Labelling on Ray (``attribute distill label --engine ray``): queries are independent, so each is one task for a
pool of Ray Data actors, each holding the diffusion model and its unlearning caches once. The driver
(``labels.label_queries``) writes every label as it comes back, into the same store a local run writes; an
interrupted run keeps what was written and redoes the rest. Locally a Ray instance is started for the run and
stopped after it; with ``address`` the run joins a running cluster, whose nodes need this package, the model and
the training images at the same paths.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Sequence

import numpy as np

from ..data.ray_cluster import connect_ray
from .config import LabelConfig
from .labels import LabelEngine, label_query


class LabelWorker:
    """A Ray Data actor: loads the unlearning space once, then labels one query per row."""

    def __init__(self, space: str, settings: dict, device: str, threads: int):
        import torch

        from ..registry import create_attributor

        torch.set_num_threads(max(1, threads))
        self.attributor = create_attributor(space, {"config": settings}, device=device, progress=False)
        self.attributor.prepare()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"png": [], "record": []}
        for index, config in zip(batch["index"], batch["config"], strict=True):
            png, record = label_query(self.attributor, int(index), LabelConfig(**json.loads(config)))
            out["png"].append(png)
            out["record"].append(json.dumps(record))
        return out


def ray_engine(settings: dict) -> LabelEngine:
    """Label on ``config.workers`` Ray actors (``config.address``: a cluster to join; else a local instance), each
    loading ``config.space`` with the unlearning ``settings``."""

    def run(indices: Sequence[int], config: LabelConfig) -> Iterator[tuple[bytes, dict]]:
        import ray
        import ray.data

        started = connect_ray(config.address, max(os.cpu_count() or 1, config.workers + 1))
        try:
            ray.data.DataContext.get_current().enable_progress_bars = False  # the labelling's own bar counts queries
            payload = json.dumps(dataclasses.asdict(config))
            rows = [{"index": int(i), "config": payload} for i in indices]
            dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
                LabelWorker,
                fn_constructor_kwargs={
                    "space": config.space,
                    "settings": settings,
                    "device": config.device,
                    "threads": 1,
                },
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=max(1, config.workers)),
                num_cpus=1,
                num_gpus=config.gpus_per_worker,
            )  # a killed actor is restarted and its query retried
            for row in dataset.iter_rows():
                yield bytes(row["png"]), json.loads(row["record"])
        finally:
            if started:
                ray.shutdown()

    return run
