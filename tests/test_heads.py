"""Tuned heads: released format loads, round-trips, and misfits are named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attribution_core.errors import CheckpointError
from attribution_core.heads import identity_heads, load_heads, save_heads

from .helpers import released_heads


def test_released_heads_map_like_the_original(tmp_path) -> None:
    d = 16
    state = released_heads(d)
    torch.save(state, tmp_path / "h.pth")
    heads = load_heads(tmp_path / "h.pth", d)
    x = torch.randn(5, d)
    want = torch.nn.functional.normalize(x @ state["synth_mapper"]["weight"].T + state["synth_mapper"]["bias"], dim=-1)
    torch.testing.assert_close(heads.synth_head(x), want)
    mapped = heads.real_head.map_numpy(x.numpy())
    np.testing.assert_allclose(np.linalg.norm(mapped, axis=1), 1.0, rtol=1e-5)


def test_round_trip_and_fingerprint(tmp_path) -> None:
    torch.save(released_heads(8), tmp_path / "h.pth")
    heads = load_heads(tmp_path / "h.pth", 8)
    save_heads(heads, tmp_path / "again.pth")
    again = load_heads(tmp_path / "again.pth", 8)
    assert again.fingerprint() == heads.fingerprint() != identity_heads(8).fingerprint()


def test_identity_heads_only_normalise() -> None:
    x = torch.randn(3, 8)
    torch.testing.assert_close(identity_heads(8).real_head(x), torch.nn.functional.normalize(x, dim=-1))


def test_head_of_another_backbone_is_refused(tmp_path) -> None:
    torch.save(released_heads(512), tmp_path / "clip_tuned.pth")
    with pytest.raises(CheckpointError, match=r"clip_tuned.pth: real_mapper has weight \(512, 512\).*768-d"):
        load_heads(tmp_path / "clip_tuned.pth", 768)
    torch.save({"weight": torch.eye(4)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"other\.pth: not a head checkpoint"):
        load_heads(tmp_path / "other.pth", 4)
