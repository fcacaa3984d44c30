"""Tuned heads: released format loads, round-trips, and misfits are named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attribution_core.core.errors import CheckpointError
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


def authors_mlp(d: int, hidden: int = 512, out: int = 256, layers: int = 2) -> torch.nn.Sequential:
    """The authors' MLP mapper layout, built independently of the library: Linear(no bias) -> BN -> ReLU ->
    Dropout per hidden layer, last Linear -> BN(affine=False)."""
    mods: list[torch.nn.Module] = []
    for i in range(layers):
        d_in, d_out = (d if i == 0 else hidden), (out if i == layers - 1 else hidden)
        mods.append(torch.nn.Linear(d_in, d_out, bias=False))
        if i < layers - 1:
            mods += [torch.nn.BatchNorm1d(d_out), torch.nn.ReLU(), torch.nn.Dropout(0.0)]
        else:
            mods.append(torch.nn.BatchNorm1d(d_out, affine=False))
    return torch.nn.Sequential(*mods)


def test_mlp_heads_in_the_authors_layout_load_and_map_alike(tmp_path) -> None:
    d = 32
    real, synth = authors_mlp(d, hidden=24, out=16, layers=3), authors_mlp(d, hidden=24, out=16, layers=3)
    for m in (real, synth):  # give the BatchNorms real statistics, as after training
        m.train()
        m(torch.randn(64, d) * 3 + 1)
        m.eval()
    torch.save({"real_mapper": real.state_dict(), "synth_mapper": synth.state_dict()}, tmp_path / "mlp.pth")
    heads = load_heads(tmp_path / "mlp.pth", d)
    assert heads.kind == "mlp" and heads.dim == 16 and heads.in_dim == d
    x = torch.randn(5, d)
    with torch.no_grad():
        torch.testing.assert_close(heads.synth_head(x), torch.nn.functional.normalize(synth(x), dim=-1))
    assert heads.real_head.map_numpy(x.numpy()).shape == (5, 16)
    with pytest.raises(CheckpointError, match=r"mlp.pth: real_mapper has a first layer for 32-d input.*64-d"):
        load_heads(tmp_path / "mlp.pth", 64)


def test_channel_heads_in_the_authors_layout(tmp_path) -> None:
    w = torch.rand(1, 8) + 0.5
    torch.save({"real_mapper": {"weights": w}, "synth_mapper": {"weights": w * 2}}, tmp_path / "ch.pth")
    heads = load_heads(tmp_path / "ch.pth", 8)
    x = torch.randn(3, 8)
    assert heads.kind == "channel"
    torch.testing.assert_close(heads.real_head(x), torch.nn.functional.normalize(x * w, dim=-1))
    save_heads(heads, tmp_path / "again.pth")
    again = torch.load(tmp_path / "again.pth", weights_only=True)
    assert set(again["real_mapper"]) == {"weights"}  # the released layout, readable by the original code
    linear = identity_heads(8)
    assert heads.fingerprint() != linear.fingerprint()  # an index built with another head type is stale


def test_head_checkpoint_of_strings_is_refused(tmp_path) -> None:
    torch.save({"real_mapper": {"weight": "eye"}, "synth_mapper": {"weight": "eye"}}, tmp_path / "s.pth")
    with pytest.raises(CheckpointError, match=r"s\.pth: real_mapper must be a dict of tensors"):
        load_heads(tmp_path / "s.pth", 4)


def test_an_identity_linear_head_only_normalises_and_notices_a_change() -> None:
    """The untuned space's identity head skips its d×d product outside autograd: bit-identical output; once its
    weights change in place (a training step), the product is used again; gradients still flow in training."""
    import numpy as np

    from attribution_core.heads import identity_heads

    head = identity_heads(64).real_head
    x = torch.randn(100, 64)
    with torch.no_grad():
        reference = torch.nn.functional.normalize(head.mapper(x), dim=-1)
    assert head.is_identity() and np.array_equal(head.map_numpy(x.numpy()), reference.numpy())
    head(x).sum().backward()  # with autograd: through the mapper
    assert head.mapper.weight.grad is not None
    with torch.no_grad():
        head.mapper.weight[3, 5] += 0.25
        changed = torch.nn.functional.normalize(head.mapper(x), dim=-1)
    assert not head.is_identity() and np.array_equal(head.map_numpy(x.numpy()), changed.numpy())
