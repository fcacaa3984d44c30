"""The fixed-noise diffusion loss and its per-sample gradients (for unlearning, the judges and gradient methods)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from diffusers.models.attention_processor import AttnProcessor
from torch.func import functional_call, grad, vmap

from .model import TextToImageModel


def strided_timesteps(num_train_timesteps: int, n: int) -> torch.Tensor:
    """``n`` timesteps strided over the schedule, each centred in its stride.

    Args:
        num_train_timesteps: length T of the noise schedule.
        n: how many timesteps.

    Returns:
        [n] int64, ``(i·T + T//2) // n`` for i = 0..n-1.
    """
    return (torch.arange(n) * num_train_timesteps + num_train_timesteps // 2) // n


def fixed_draws(
    num_train_timesteps: int, timesteps: int, draws: int, seed: int, shape: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed timestep/noise draws a loss is measured with: the same for every call with the same arguments.

    Every one of ``draws`` passes visits the ``timesteps`` strided timesteps, and each (pass, timestep) pair has its
    own noise; the noise is drawn on the CPU from a generator seeded with ``seed`` (callers that want independent
    families of draws scramble their seed themselves), so it does not depend on the device.

    Args:
        num_train_timesteps: length T of the noise schedule.
        timesteps: strided timesteps per pass (see :func:`strided_timesteps`).
        draws: passes over those timesteps.
        seed: seed of the noise generator.
        shape: [c, h, w] of one sample the UNet denoises.

    Returns:
        ``(t, noise)``: t [k] int64 (the strided timesteps repeated ``draws`` times, pass-major) and noise
        [k, c, h, w] float32, on the CPU, k = timesteps · draws.
    """
    t = strided_timesteps(num_train_timesteps, timesteps).repeat(draws)
    noise = torch.randn((len(t), *shape), generator=torch.Generator().manual_seed(seed))
    return t, noise


def encode_captions(
    model: TextToImageModel, captions: Sequence[str], cache: dict[str, torch.Tensor] | None = None
) -> torch.Tensor:
    """Encode captions one distinct caption at a time (so an encoding does not depend on what it is batched with).

    Args:
        model: the text-to-image model.
        captions: n captions, repeats allowed.
        cache: caption -> its encoding [L, d]; filled with the captions it lacks (pass one dict to reuse encodings
            across calls).

    Returns:
        [n, L, d] text features, on the model's device.
    """
    cache = {} if cache is None else cache
    for c in dict.fromkeys(captions):
        if c not in cache:
            cache[c] = model.encode_prompts([c])[0]
    return torch.stack([cache[c] for c in captions])


def fixed_noise_losses(
    model: TextToImageModel,
    x: torch.Tensor,
    captions: Sequence[str],
    t: torch.Tensor,
    noise: torch.Tensor,
    dtype: torch.dtype | None = None,
    text_cache: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Each example's DDPM loss under the same k fixed draws, averaged over the draws.

    Runs under the caller's grad mode (wrap it in ``torch.no_grad()`` to measure only). Every example sees every
    draw in one forward pass of n·k samples.

    Args:
        model: the text-to-image model.
        x: [n, c, h, w] what the UNet denoises (pixels, or a latent model's latents: see
            ``TextToImageModel.encode_images``).
        captions: the n captions the examples are conditioned on (encoded by :func:`encode_captions`).
        t: [k] timesteps, shared by every example.
        noise: [k, c, h, w] noise, draw i at timestep t[i], shared by every example.
        dtype: the dtype the k per-draw losses are averaged in (None: the model's, float32).
        text_cache: passed to :func:`encode_captions`.

    Returns:
        [n] losses, on the model's device.
    """
    device = model.device
    n, k = len(x), len(t)
    text = encode_captions(model, captions, text_cache)
    x = x.to(device)
    if n == 1:  # one example: broadcast its image and text over the draws without copying
        xs, texts = x.expand(k, *x.shape[1:]), text.expand(k, *text.shape[1:])
    else:
        xs, texts = x.repeat_interleave(k, 0), text.repeat_interleave(k, 0)
    noise = noise.to(device)
    per_draw = model.losses(xs, texts, t.repeat(n).to(device), noise.repeat(n, *([1] * (noise.dim() - 1))))
    per_draw = per_draw.reshape(n, k)
    return per_draw.mean(dim=1) if dtype is None else per_draw.to(dtype).mean(dim=1)


def per_sample_grads(
    model: TextToImageModel,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    text: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Per-sample gradients of the DDPM loss with respect to some UNet parameters (``torch.func``: ``vmap`` of
    ``grad``), each example at its own timestep and noise.

    The loss of example i is the mean squared error of the predicted noise, as in ``TextToImageModel.losses``. The
    UNet's attention processors are plain matmul attention while this runs (``vmap`` has batching rules for it, not
    for SDPA) and are restored after.

    Args:
        model: the text-to-image model.
        params: {name in ``model.unet.named_parameters()``: the value to differentiate at}; every other parameter
            keeps its current value.
        x: [n, c, h, w] what the UNet denoises, on the model's device.
        text: [n, L, d] encoded prompts.
        t: [n] timesteps.
        noise: [n, c, h, w] noise.

    Returns:
        {name: [n, *shape of the parameter]} gradients, in the parameter's dtype.
    """
    unet = model.unet
    weights = {k: v.detach() for k, v in params.items()}
    frozen = {k: v.detach() for k, v in unet.named_parameters() if k not in weights}
    buffers = dict(unet.named_buffers())
    sched = model.scheduler

    def sample_loss(w, x, t, noise, text):
        noisy = sched.add_noise(x[None], noise[None], t[None])
        pred = functional_call(
            unet, ({**frozen, **w}, buffers), (noisy, t[None]), {"encoder_hidden_states": text[None]}
        ).sample
        return ((pred - noise[None]) ** 2).mean()

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0, 0, 0), randomness="same")
    processors = unet.attn_processors
    unet.set_attn_processor(AttnProcessor())
    try:
        return per_sample(weights, x, t, noise, text)
    finally:
        unet.set_attn_processor(processors)
