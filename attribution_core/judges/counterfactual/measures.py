"""What a removal did to a query, as the AbU paper measures it (docs/method.md §7): the query's DDPM loss on fixed
noise and timesteps (ΔL), and the image regenerated from the same prompt, seed and initial noise (ΔG as pixel MSE
and as the drop in EfficientNet cosine similarity to the original query)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...backbones import Backbone
from ...diffusion.data import tensor_image
from ...diffusion.generation import FIRST_SAMPLER
from ...diffusion.model import TextToImageModel
from ...diffusion.objective import fixed_draws, fixed_noise_losses
from ...diffusion.sample import generate

#: Seed of the fixed noise the query's loss is measured with (the same for the base model and every retrain).
LOSS_NOISE_SEED = 20241


@dataclass(frozen=True)
class QueryEffect:
    """A model's loss on the query, and its regeneration's distance to the query."""

    loss: float  # mean DDPM loss of the query under the model, fixed noise and timesteps
    mse: float  # pixel MSE (in [0, 1] units) of the regenerated image to the original query
    similarity: float  # EfficientNet cosine of the regenerated image to the original query


@torch.no_grad()
def query_loss(model: TextToImageModel, query: torch.Tensor, prompt: str, timesteps: int, draws: int) -> float:
    """The query's [3, r, r] DDPM loss, averaged over ``timesteps`` strided timesteps × ``draws`` fixed noises."""
    x = model.encode_images(query[None])
    t, noise = fixed_draws(model.config.num_train_timesteps, timesteps, draws, LOSS_NOISE_SEED, x.shape[1:])
    return float(fixed_noise_losses(model, x, [prompt], t, noise, dtype=torch.float64)[0])


def cosine(backbone: Backbone, a: torch.Tensor, b: torch.Tensor) -> float:
    """EfficientNet cosine similarity of two images [3, r, r] in [-1, 1]."""
    f = backbone.embed_images([tensor_image(a), tensor_image(b)]).astype(np.float64)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    return float(f[0] @ f[1])


def query_effect(
    model: TextToImageModel, query: torch.Tensor, prompt: str, seed: int, backbone: Backbone, timesteps: int, draws: int
) -> QueryEffect:
    """Loss and regeneration of one query under ``model`` (the same sampler settings as the query's)."""
    regenerated = generate(model, [prompt], [seed], FIRST_SAMPLER)[0].cpu()
    mse = float((((regenerated - query) / 2) ** 2).mean())
    return QueryEffect(query_loss(model, query, prompt, timesteps, draws), mse, cosine(backbone, regenerated, query))
