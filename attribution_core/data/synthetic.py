"""Seeded synthetic features for benchmarks and tests: clustered unit vectors, like real image embeddings."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def clustered_blocks(
    n: int, d: int, n_clusters: int, seed: int = 0, spread: float = 0.6, block: int = 100_000
) -> Iterator[np.ndarray]:
    """:func:`clustered_features` made ``block`` rows at a time (a store larger than RAM, in constant memory)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, d)).astype(np.float32)
    for i in range(0, n, block):
        m = min(block, n - i)
        x = centres[rng.integers(0, n_clusters, m)] + spread * rng.standard_normal((m, d), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield x


def clustered_features(n: int, d: int, n_clusters: int, seed: int = 0, spread: float = 0.6) -> np.ndarray:
    """[n, d] float32 unit vectors drawn around ``n_clusters`` random centres (built in 100k-row chunks)."""
    xb = np.empty((n, d), dtype=np.float32)
    for i, x in enumerate(clustered_blocks(n, d, n_clusters, seed, spread)):
        xb[i * 100_000 : i * 100_000 + len(x)] = x
    return xb


def perturbed(x: np.ndarray, noise: float, seed: int = 0) -> np.ndarray:
    """Unit vectors near the rows of ``x`` (a generated image resembling training images).

    ``noise`` is the typical norm of the added perturbation (0.3 gives cosine about 0.96 to the source).
    """
    rng = np.random.default_rng(seed)
    y = x + np.float32(noise / np.sqrt(x.shape[-1])) * rng.standard_normal(x.shape, dtype=np.float32)
    return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)
