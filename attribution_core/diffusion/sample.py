"""Generating images from prompts: DDIM with classifier-free guidance (diffusers' scheduler). The record of how
an image was made, and its PNG metadata, are in ``generation.py``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import DDIMScheduler
from PIL import Image

from ..core.progress import CancelFlag, ProgressCallback, tracked
from .data import tensor_image
from .generation import Generation, SamplerSettings
from .model import TextToImageModel


def initial_noise(model: TextToImageModel, seed: int) -> torch.Tensor:
    """The starting noise [1, c, h, w] of seed ``seed`` (the same on every machine and device)."""
    return torch.randn((1, *model.sample_shape()), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(
    model: TextToImageModel,
    prompts: Sequence[str],
    seeds: Sequence[int],
    settings: SamplerSettings = SamplerSettings(),
    progress: bool = False,
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> torch.Tensor:
    """Sample one image per (prompt, seed), in a batch.

    Returns:
        [B, 3, r, r] images in [-1, 1].
    """
    device = model.device
    scheduler = DDIMScheduler.from_config(model.scheduler.config)
    scheduler.set_timesteps(settings.steps)
    x = torch.cat([initial_noise(model, s) for s in seeds]).to(device)
    text = model.encode_prompts(list(prompts))
    empty = model.encode_prompts([""] * len(prompts))
    both = torch.cat([empty, text])
    # eta > 0 adds fresh noise each step: drawn per image from its own seed, so a batch equals its images alone
    step_noise = [torch.Generator().manual_seed(s * 2 + 1) for s in seeds]
    for t in tracked(scheduler.timesteps, "sample", progress=progress, on_progress=on_progress, cancel=cancel):
        eps = model.predict_noise(torch.cat([x, x]), t.expand(2 * len(x)).to(device), both)
        uncond, cond = eps.chunk(2)
        guided = uncond + settings.guidance * (cond - uncond)
        noise = None
        if settings.eta > 0:
            noise = torch.cat([torch.randn((1, *x.shape[1:]), generator=g) for g in step_noise]).to(device)
        x = scheduler.step(guided, t, x, eta=settings.eta, variance_noise=noise).prev_sample
    return model.decode(x).clamp(-1, 1)


def generate_image(
    model: TextToImageModel, prompt: str, seed: int, settings: SamplerSettings = SamplerSettings(), **kw
) -> tuple[Image.Image, Generation]:
    """One image and its generation record."""
    x = generate(model, [prompt], [seed], settings, **kw)[0]
    return tensor_image(x), Generation(prompt, seed, model.fingerprint(), settings)
