"""What embeds an extraction's shards: this process, or a cluster (``extract_ray``).

An engine takes the shards still to do (lists of ``(file, stored path)``) and yields, per shard, the features of
the images it could embed and a reason for each it could not. Committing shards, resuming and assembling the
store stay in :mod:`attribution_core.data.extract`, so every engine writes the same store with the same rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..backbones import Backbone
from ..core.errors import InputImageError
from ..core.images import SkippedFile, load_rgb
from ..core.progress import CancelFlag, check_cancelled

#: One shard to embed: (file, its stored path) in store order.
Chunk = list[tuple[Path, str]]


@dataclass
class ShardResult:
    """What one shard gave: features of the embedded images (in the shard's order) and the skipped files."""

    feats: np.ndarray  # [n, d] float32, finite
    rels: list[str]  # the stored paths of the n rows
    skipped: list[SkippedFile] = field(default_factory=list)


class ShardEngine(Protocol):
    def __call__(
        self,
        chunks: Sequence[Chunk],
        backbone: Backbone,
        batch_size: int,
        tick: Callable[[int], None],
        cancel: CancelFlag | None,
    ) -> Iterator[ShardResult]:
        """Embed ``chunks`` (any order of completion); call ``tick(n)`` as images are done."""
        ...


def decode(backbone: Backbone, file: Path, rel: str) -> torch.Tensor | SkippedFile:
    """A file -> the backbone's input tensor, or the one-line reason it cannot be read."""
    try:
        return backbone.preprocess(load_rgb(file, rel))
    except InputImageError as exc:
        return SkippedFile(rel, str(exc).split(": ", 1)[-1])


def embed_decoded(backbone: Backbone, decoded: Sequence[tuple[str, torch.Tensor | SkippedFile]]) -> ShardResult:
    """Embed one batch of decoded images; files that failed to decode or gave NaN/inf features are skipped."""
    skipped = [t for _, t in decoded if isinstance(t, SkippedFile)]
    ok = [(r, t) for r, t in decoded if isinstance(t, torch.Tensor)]
    if not ok:
        return ShardResult(np.zeros((0, backbone.dim), np.float32), [], skipped)
    feats = backbone.embed(torch.stack([t for _, t in ok]))
    finite = np.isfinite(feats).all(axis=1)
    skipped += [
        SkippedFile(r, "the backbone produced NaN/inf features for it")
        for (r, _), good in zip(ok, finite, strict=True)
        if not good
    ]
    rels = [r for (r, _), good in zip(ok, finite, strict=True) if good]
    return ShardResult(np.ascontiguousarray(feats[finite], dtype=np.float32), rels, skipped)


def embed_chunk(
    backbone: Backbone,
    chunk: Chunk,
    batch_size: int,
    pool: ThreadPoolExecutor,
    tick: Callable[[int], None] | None = None,
    cancel: CancelFlag | None = None,
) -> ShardResult:
    """One shard, batch by batch, with images decoded by ``pool``'s threads while the model runs."""
    parts = []
    for b in range(0, len(chunk), batch_size):
        check_cancelled(cancel)
        batch = chunk[b : b + batch_size]
        decoded = list(pool.map(lambda fr: (fr[1], decode(backbone, fr[0], fr[1])), batch))
        parts.append(embed_decoded(backbone, decoded))
        if tick:
            tick(len(batch))
    return ShardResult(
        np.concatenate([p.feats for p in parts]) if parts else np.zeros((0, backbone.dim), np.float32),
        [r for p in parts for r in p.rels],
        [s for p in parts for s in p.skipped],
    )


class LocalEngine:
    """Shards embedded one after another in this process; ``workers`` threads decode images."""

    def __init__(self, workers: int = 4):
        self.workers = max(1, workers)

    def __call__(
        self,
        chunks: Sequence[Chunk],
        backbone: Backbone,
        batch_size: int,
        tick: Callable[[int], None],
        cancel: CancelFlag | None,
    ) -> Iterator[ShardResult]:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for chunk in chunks:
                yield embed_chunk(backbone, chunk, batch_size, pool, tick, cancel)
