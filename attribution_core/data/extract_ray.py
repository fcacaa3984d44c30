"""Extraction on a Ray cluster (``attribute extract --engine ray``): shards embedded by a pool of Ray Data actors.

The driver (``extract.extract_features``) lists the images, cuts the work into shards, and commits each shard the
moment it comes back, exactly as for a local extraction; this engine only embeds. Ray Data runs the shards as a
dataset with one row per shard through ``map_batches`` with an actor class: each actor loads the backbone once
(on its GPU when ``gpus_per_worker`` is set) and, per shard, reads and decodes its images on a few threads and
embeds them in batches. Decoding inside the actor keeps a shard's pixels out of the object store (a 512-image
shard of 224-pixel float tensors is 300 MB) and makes a shard the unit of retry: Ray restarts a killed actor and
re-runs its shard, and an interrupted driver loses only the shards it had not committed.

Locally a Ray instance is started for the run and stopped after it; with ``address`` the run joins a running
cluster (``ray start --head`` / ``ray://...``), whose nodes need this package installed and the images (and the
backbone's weights) at the same paths.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..backbones import Backbone
from ..core.images import SkippedFile
from ..core.progress import CancelFlag, check_cancelled
from .ray_cluster import connect_ray
from .shard_engines import Chunk, ShardResult, embed_chunk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneRequest:
    """How each actor builds its backbone (the same arguments as ``create_backbone``)."""

    name: str
    weights: str | None = None
    device: str = "cpu"
    allow_download: bool = False


class ShardEmbedder:
    """A Ray Data actor: embeds whole shards (one row = one shard, as JSON ``[[file, stored path], ...]``)."""

    def __init__(self, spec: BackboneRequest, batch_size: int, threads: int):
        import torch

        from ..backbones import create_backbone

        torch.set_num_threads(max(1, threads))
        self.backbone = create_backbone(spec.name, spec.weights, spec.device, spec.allow_download)
        self.batch_size = batch_size
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"chunk": [], "feats": [], "rels": [], "skipped": []}
        for chunk_id, task in zip(batch["chunk"], batch["task"], strict=True):
            chunk = [(Path(f), r) for f, r in json.loads(task)]
            result = embed_chunk(self.backbone, chunk, self.batch_size, self.pool)
            out["chunk"].append(int(chunk_id))
            out["feats"].append(result.feats.astype(np.float32).tobytes())
            out["rels"].append(json.dumps(result.rels))
            out["skipped"].append(json.dumps([[s.path, s.reason] for s in result.skipped]))
        return out


class RayEngine:
    """Embed shards on Ray: ``workers`` actors, each with ``cpus_per_worker`` CPUs (and ``gpus_per_worker`` GPUs).

    Args:
        spec: the backbone every actor builds.
        address: a running cluster to join (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``); None starts a local
            Ray instance for this run.
    """

    def __init__(
        self,
        spec: BackboneRequest,
        address: str | None = None,
        workers: int = 2,
        cpus_per_worker: float = 1,
        gpus_per_worker: float = 0,
    ):
        self.spec = spec
        self.address = address
        self.workers = max(1, workers)
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker

    def __call__(
        self,
        chunks: Sequence[Chunk],
        backbone: Backbone,
        batch_size: int,
        tick: Callable[[int], None],
        cancel: CancelFlag | None,
    ) -> Iterator[ShardResult]:
        if not chunks:
            return
        import ray
        import ray.data

        cpus = max(os.cpu_count() or 1, int(np.ceil(self.workers * self.cpus_per_worker)) + 1)
        started = connect_ray(self.address, cpus)
        try:
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False  # the extraction's own bar counts images
            rows = [{"chunk": i, "task": json.dumps([[str(f), r] for f, r in chunk])} for i, chunk in enumerate(chunks)]
            dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
                ShardEmbedder,
                fn_constructor_kwargs={
                    "spec": self.spec,
                    "batch_size": batch_size,
                    "threads": max(1, int(self.cpus_per_worker)),
                },
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=self.workers),
                num_cpus=self.cpus_per_worker,
                num_gpus=self.gpus_per_worker,
            )  # Ray Data's actor pools restart a killed actor and retry its shard (max_restarts=-1 by default)
            for row in dataset.iter_rows():
                check_cancelled(cancel)
                chunk = chunks[int(row["chunk"])]
                rels = json.loads(row["rels"])
                feats = np.frombuffer(row["feats"], dtype=np.float32).reshape(len(rels), backbone.dim)
                skipped = [SkippedFile(p, reason) for p, reason in json.loads(row["skipped"])]
                tick(len(chunk))
                yield ShardResult(feats.copy(), rels, skipped)
        finally:
            if started:
                ray.shutdown()
