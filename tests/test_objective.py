"""The fixed-noise diffusion loss and its per-sample gradients (diffusion/objective.py), on a tiny untrained model:
the same draws give the same loss wherever it is computed (unlearning's cached losses, the counterfactual judge's
query loss), and a batch's per-sample gradients are each example's own gradient."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from attribution_core.diffusion import ModelConfig
from attribution_core.diffusion.model import TextToImageModel, cross_attention_kv
from attribution_core.diffusion.objective import (
    encode_captions,
    fixed_draws,
    fixed_noise_losses,
    per_sample_grads,
    strided_timesteps,
)
from attribution_core.judges.counterfactual import query_loss
from attribution_core.judges.counterfactual.measures import LOSS_NOISE_SEED
from attribution_core.unlearning import UnlearningConfig, cached_losses, training_losses
from attribution_core.unlearning.scores import entry_images, scoring_draws

from .helpers import tiny_training_set

MODEL = ModelConfig(
    resolution=8, block_out_channels=(16, 32), attention_levels=(False, True), text_dim=32, text_layers=1
)
CONFIG = UnlearningConfig(score_timesteps=4, batch_size=16, seed=3, device="cpu")


@pytest.fixture(scope="module")
def tiny():
    """A randomly initialised tiny model (eval mode: no dropout) and 8 captioned photos at its resolution."""
    data = tiny_training_set(n=8, resolution=8)
    model = TextToImageModel.create(MODEL, list(data.captions), seed=0)
    model.unet.eval()
    model.text_encoder.eval()
    return model, data


def test_fixed_draws_are_strided_seeded_and_independent_of_earlier_random_calls() -> None:
    assert strided_timesteps(1000, 4).tolist() == [125, 375, 625, 875]
    t, noise = fixed_draws(1000, 4, 3, seed=7, shape=(3, 8, 8))
    assert t.tolist() == [125, 375, 625, 875] * 3 and noise.shape == (12, 3, 8, 8)
    torch.randn(100)  # the global generator does not matter
    again = fixed_draws(1000, 4, 3, seed=7, shape=(3, 8, 8))
    assert torch.equal(t, again[0]) and torch.equal(noise, again[1])
    assert not torch.equal(noise, fixed_draws(1000, 4, 3, seed=8, shape=(3, 8, 8))[1])


@torch.no_grad()
def test_the_loss_is_bit_identical_when_computed_twice_and_whatever_the_batch(tiny) -> None:
    model, data = tiny
    t, noise = fixed_draws(MODEL.num_train_timesteps, 4, 2, seed=1, shape=data.images.shape[1:])
    batch = fixed_noise_losses(model, data.images, data.captions, t, noise)
    assert batch.shape == (len(data),) and batch.dtype == torch.float32
    assert torch.equal(batch, fixed_noise_losses(model, data.images, data.captions, t, noise))
    alone = torch.cat(
        [
            fixed_noise_losses(model, data.images[i : i + 1], data.captions[i : i + 1], t, noise)
            for i in range(len(data))
        ]
    )
    assert torch.equal(batch, alone)
    # different noise, a different loss
    other = fixed_draws(MODEL.num_train_timesteps, 4, 2, seed=2, shape=data.images.shape[1:])
    assert not torch.equal(batch, fixed_noise_losses(model, data.images, data.captions, *other))


@torch.no_grad()
def test_unlearnings_cached_losses_and_the_counterfactual_query_loss_agree_on_the_same_draws(
    tiny, tmp_path, monkeypatch
) -> None:
    model, data = tiny
    monkeypatch.setattr("attribution_core.unlearning.caches.cache_folder", lambda model, data: tmp_path)
    computed = cached_losses(model, data, CONFIG)  # computed, then read back from the cache
    assert len(list(tmp_path.glob("losses-*.npy"))) == 1
    assert computed.shape == (2 * len(data),) and np.array_equal(computed, cached_losses(model, data, CONFIG))
    assert np.array_equal(computed, training_losses(model, data, replace(CONFIG, batch_size=1)))
    t, noise = scoring_draws(model, CONFIG, tuple(data.images.shape[1:]))
    flips = entry_images(data, np.arange(len(data), 2 * len(data)))
    for i in (0, 5):
        for image, loss in ((data.images[i], computed[i]), (flips[i], computed[len(data) + i])):
            own = fixed_noise_losses(model, image[None], [data.captions[i]], t, noise)
            assert own.double().item() == loss
    # the judge's query loss is the same function on its own draws (one seed, averaged in float64)
    for timesteps, draws in ((8, 2), (50, 1)):
        t, noise = fixed_draws(MODEL.num_train_timesteps, timesteps, draws, LOSS_NOISE_SEED, data.images.shape[1:])
        for i in (0, 5):
            judged = query_loss(model, data.images[i], data.captions[i], timesteps, draws)
            own = fixed_noise_losses(model, data.images[i][None], [data.captions[i]], t, noise, dtype=torch.float64)
            assert judged == own.item()
    # a training image's unlearning loss and its query loss under the unlearning draws: the same number up to
    # the precision the draws are averaged in
    t, noise = scoring_draws(model, CONFIG, tuple(data.images.shape[1:]))
    as_query = fixed_noise_losses(model, data.images[:1], data.captions[:1], t, noise, dtype=torch.float64)
    assert as_query.item() == pytest.approx(computed[0], rel=1e-6)


def test_per_sample_gradients_of_a_batch_are_each_examples_own_gradient(tiny) -> None:
    model, data = tiny
    n = 4
    kv = cross_attention_kv(model.unet)
    processors = dict(model.unet.attn_processors)
    g = torch.Generator().manual_seed(0)
    x = data.images[:n]
    t = torch.randint(0, MODEL.num_train_timesteps, (n,), generator=g)
    noise = torch.randn(x.shape, generator=g)
    with torch.no_grad():
        text = encode_captions(model, data.captions[:n])
    grads = per_sample_grads(model, kv, x, text, t, noise)
    assert set(grads) == set(kv) and all(grads[k].shape == (n, *p.shape) for k, p in kv.items())
    assert {k: type(p) for k, p in model.unet.attn_processors.items()} == {k: type(p) for k, p in processors.items()}
    before = {k: p.requires_grad for k, p in kv.items()}
    try:
        for p in kv.values():
            p.requires_grad_(True)
        for i in range(n):  # each example alone, by ordinary autograd of its fixed-noise loss at its one draw
            loss = fixed_noise_losses(model, x[i : i + 1], data.captions[i : i + 1], t[i : i + 1], noise[i : i + 1])
            alone = torch.autograd.grad(loss.sum(), list(kv.values()))
            for k, a in zip(kv, alone, strict=True):
                torch.testing.assert_close(grads[k][i], a, rtol=1e-4, atol=1e-6)
    finally:
        for k, p in kv.items():
            p.requires_grad_(before[k])
    # different examples, different gradients
    k0 = next(iter(kv))
    assert not torch.allclose(grads[k0][0], grads[k0][1])
