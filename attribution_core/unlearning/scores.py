"""The three computations of attribution by unlearning (docs/method.md §6): the diagonal Fisher of the training
loss, the training losses at fixed noise ("before" and "after"), and the Fisher-preconditioned ascent on the
query's loss over the cross-attention key/value weights.

Scoring noise is one fixed draw per scoring timestep, shared by every training entry (image or flip) — common
random numbers, as the authors' per-batch seeding gives each batch the same noise, but independent of the batch
size, device and order. "After − before" then compares like with like (lr = 0 gives exactly 0), and two similar
training images are compared under the same noise, so their ranking reflects the images, not their noise draws
(measured on 4 self-queries of the demo model: the query's own rank went from 12/2/1/3 with a draw per image to
8/1/1/1 shared; docs/unlearning.md).
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.progress import CancelFlag, ProgressCallback, tracked
from ..diffusion.data import TrainingSet
from ..diffusion.model import TextToImageModel, cross_attention_kv
from ..diffusion.objective import fixed_draws, fixed_noise_losses, per_sample_grads, strided_timesteps
from .config import UnlearningConfig


def score_timesteps(model: TextToImageModel, n: int) -> torch.Tensor:
    """``n`` timesteps strided over the schedule, centred in their strides: [n]."""
    return strided_timesteps(model.config.num_train_timesteps, n)


def scoring_draws(
    model: TextToImageModel, config: UnlearningConfig, shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed timesteps [n] and noise [n, *shape] every training entry is scored with, one noise draw per
    scoring timestep, n = ``config.score_timesteps`` (on the CPU)."""
    return fixed_draws(model.config.num_train_timesteps, config.score_timesteps, 1, config.seed * 1_000_003, shape)


def entry_images(data: TrainingSet, entries: np.ndarray) -> torch.Tensor:
    """Entries 0..N-1 are the images, N..2N-1 their horizontal flips: [len(entries), 3, r, r]."""
    n = len(data)
    images = data.images[torch.from_numpy(entries % n)]
    flip = torch.from_numpy(entries >= n)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


@torch.no_grad()
def training_losses(
    model: TextToImageModel,
    data: TrainingSet,
    config: UnlearningConfig,
    progress: bool = False,
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    stage: str = "score training images",
) -> np.ndarray:
    """The DDPM loss of every training image and of its flip, averaged over ``config.score_timesteps`` fixed
    timesteps with the fixed noise of :func:`scoring_draws` (the same for every entry).

    Returns:
        [2N] float64: images first, then their flips.
    """
    shape = tuple(data.images.shape[1:])  # [3, r, r] pixels, or a latent model's [c, h, w]
    ts, shared = scoring_draws(model, config, shape)
    shared = shared.to(model.device)
    per_batch = max(1, config.batch_size // len(ts))
    entries = np.arange(2 * len(data))
    out = np.empty(len(entries), dtype=np.float64)
    text_cache: dict[str, torch.Tensor] = {}
    starts = range(0, len(entries), per_batch)
    for s in tracked(starts, stage, progress=progress, on_progress=on_progress, cancel=cancel, unit="batch"):
        batch = entries[s : s + per_batch]
        captions = [data.captions[int(e) % len(data)] for e in batch]
        losses = fixed_noise_losses(model, entry_images(data, batch), captions, ts, shared, text_cache=text_cache)
        out[s : s + len(batch)] = losses.double().cpu().numpy()
    return out


def diagonal_fisher(
    model: TextToImageModel,
    data: TrainingSet,
    config: UnlearningConfig,
    progress: bool = False,
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    chunk: int = 32,
) -> dict[str, torch.Tensor]:
    """Diagonal Fisher of the training loss over the cross-attention k/v weights: the mean of squared
    per-sample gradients over the training images and their flips, each at a random timestep and noise, for
    ``config.fisher_epochs`` passes. Per-sample gradients come from ``diffusion.objective.per_sample_grads``.

    Returns:
        {parameter name: tensor of its shape}, float64.
    """
    kv = {k: v.detach() for k, v in cross_attention_kv(model.unet).items()}
    total = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in kv.items()}
    count = 0
    device = model.device
    n_entries = 2 * len(data)
    work = [(e, s) for e in range(config.fisher_epochs) for s in range(0, n_entries, chunk)]
    with torch.no_grad():
        text_all = model.encode_prompts(list(data.captions))
    for epoch, s in tracked(work, "fisher", progress=progress, on_progress=on_progress, cancel=cancel, unit="chunk"):
        g = torch.Generator().manual_seed(config.seed * 7919 + epoch * 104729 + s)
        entries = np.arange(s, min(s + chunk, n_entries))
        x = entry_images(data, entries).to(device)
        t = torch.randint(0, model.config.num_train_timesteps, (len(entries),), generator=g).to(device)
        noise = torch.randn(x.shape, generator=g).to(device)
        text = text_all[torch.from_numpy(entries % len(data)).to(device)]
        grads = per_sample_grads(model, kv, x, text, t, noise)
        for k in total:
            total[k] += grads[k].double().square().sum(dim=0)
        count += len(entries)
    return {k: v / count for k, v in total.items()}


def unlearn(
    model: TextToImageModel,
    query: torch.Tensor,
    prompt: str,
    fisher: dict[str, torch.Tensor],
    n_train: int,
    config: UnlearningConfig,
    progress: bool = False,
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> None:
    """Make ``model`` forget ``query`` in place: ``config.steps`` ascent steps θ ← θ + lr·g/(F·N) on the
    cross-attention k/v weights, g the query's loss gradient averaged over ``batches`` × ``draws`` noise draws at
    distinct timesteps. A zero Fisher entry is floored at 1e-12 of the mean (no division by zero).

    Args:
        query: [3, r, r] in [-1, 1]; prompt: the text it was generated from; n_train: training-set size N.
    """
    device = model.device
    kv = cross_attention_kv(model.unet)
    for p in model.unet.parameters():
        p.requires_grad_(False)
    for p in kv.values():
        p.requires_grad_(True)
    with torch.no_grad():
        text = model.encode_prompts([prompt])
    denom = {k: (f.clamp_min(1e-12 * float(f.mean())) * n_train).to(device) for k, f in fisher.items()}
    x = query.to(device)[None]
    steps = range(config.steps)
    total_t = model.config.num_train_timesteps
    try:
        for step in tracked(steps, "unlearn", progress=progress, on_progress=on_progress, cancel=cancel, unit="step"):
            for p in kv.values():
                p.grad = None
            for b in range(config.batches):
                g = torch.Generator().manual_seed(config.seed * 15485863 + step * 1009 + b)
                t = torch.randperm(total_t, generator=g)[: config.draws]
                noise = torch.randn((len(t), *x.shape[1:]), generator=g)
                loss = (
                    model.losses(
                        x.expand(len(t), -1, -1, -1), text.expand(len(t), -1, -1), t.to(device), noise.to(device)
                    ).mean()
                    / config.batches
                )
                loss.backward()
            with torch.no_grad():
                for k, p in kv.items():
                    p.add_((config.lr * p.grad.double() / denom[k]).to(p.dtype))
    finally:
        for p in model.unet.parameters():
            p.requires_grad_(False)
            p.grad = None


def share_of_rise(delta: np.ndarray) -> np.ndarray:
    """Each training image's share of the total loss rise: [N] -> [N], summing to 1 (uniform when nothing rose)."""
    rise = np.maximum(delta, 0.0)
    total = rise.sum()
    return rise / total if total > 0 else np.full(delta.shape, 1.0 / len(delta))


def relative_rise(delta: np.ndarray) -> np.ndarray:
    """Each loss rise as a fraction of the query's largest: [N] -> [N] (the top image scores 1; unscored rows stay
    −inf; unchanged when nothing rose). What a fitted calibrator reads: loss rises differ in scale from query to
    query, their ratios do not (docs/method.md §6)."""
    finite = delta[np.isfinite(delta)]
    top = float(finite.max()) if finite.size else 0.0
    return delta / top if top > 0 else delta


def scores_from_losses(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """after − before, the maximum over each image and its flip: [2N] -> [N]."""
    delta = after - before
    n = len(delta) // 2
    return np.maximum(delta[:n], delta[n:])
