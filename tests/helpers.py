"""Small data makers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import numpy as np
import torch


def random_unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    """[n, d] float32 unit vectors."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def released_heads(d: int, seed: int = 0) -> dict:
    """A linear head checkpoint in the authors' released layout, random weights."""
    g = torch.Generator().manual_seed(seed)
    return {
        "real_mapper": {"weight": torch.randn(d, d, generator=g), "bias": torch.randn(d, generator=g)},
        "synth_mapper": {"weight": torch.randn(d, d, generator=g), "bias": torch.randn(d, generator=g)},
    }
