"""Training the demo text-to-image model: seeded, resumable, with a progress bar and safetensors checkpoints.

Every random choice of step ``s`` (batch, flips, timesteps, noise, dropped captions) comes from a generator
seeded by ``(seed, s)``, and the optimiser's state is checkpointed with the weights, so a run interrupted at any
point and resumed reaches the same step count with the same loss curve as an uninterrupted one. What is kept and
sampled is the exponential moving average (EMA) of the weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..core.device import resolve_device
from ..core.fileio import atomic_path, atomic_write_json
from ..core.progress import CancelFlag, ProgressCallback, tracked
from .config import ModelConfig, TrainConfig
from .data import TrainingSet
from .model import TextToImageModel

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"


@dataclass
class TrainReport:
    out: Path
    steps: int  # total steps done
    resumed_from: int  # the step a checkpoint let this run start at (0: from scratch)
    losses: list[float]  # the loss of every step, from step 1
    seconds: float  # this run's wall time


def data_fingerprint(data: TrainingSet) -> str:
    """Hash of the training set (images, captions, paths): a checkpoint of other data is not resumed."""
    h = hashlib.sha256(data.images.numpy().tobytes())
    h.update("\n".join(f"{p}\t{c}" for p, c in zip(data.paths, data.captions, strict=True)).encode())
    return h.hexdigest()[:16]


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def step_batch(data: TrainingSet, step: int, cfg: TrainConfig, n_timesteps: int, kept: torch.Tensor | None = None):
    """The seeded random choices of one step.

    ``kept`` (paired leave-K-out retraining, docs/method.md §7): the rows that may be trained on. A slot whose
    drawn row is not kept is given a kept row from a second generator, so every other choice of the step
    (the other rows, every flip, timestep, noise and dropped caption) is the one the full training set gets.
    """
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    idx = torch.randint(len(data), (cfg.batch_size,), generator=g)
    if kept is not None:
        removed = ~torch.isin(idx, kept)
        if removed.any():
            g_swap = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step + 7_919 * 1_000_003)
            swap = torch.randint(len(kept), (int(removed.sum()),), generator=g_swap)
            idx = idx.clone()
            idx[removed] = kept[swap]
    images = data.images[idx]
    if cfg.flip:
        flip = torch.rand(cfg.batch_size, generator=g) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    t = torch.randint(0, n_timesteps, (cfg.batch_size,), generator=g)
    noise = torch.randn(images.shape, generator=g)
    drop = torch.rand(cfg.batch_size, generator=g) < cfg.caption_dropout
    captions = ["" if d else data.captions[i] for i, d in zip(idx.tolist(), drop.tolist(), strict=True)]
    return images, captions, t, noise


def _params(model: TextToImageModel) -> dict[str, torch.nn.Parameter]:
    return {
        **{f"unet.{k}": v for k, v in model.unet.named_parameters()},
        **{f"text.{k}": v for k, v in model.text_encoder.named_parameters()},
    }


def train_diffusion(
    data: TrainingSet,
    out: Path | str,
    model_config: ModelConfig = ModelConfig(),  # noqa: B008
    config: TrainConfig = TrainConfig(),  # noqa: B008
    progress: bool = True,
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    stop_after: int | None = None,
    exclude: Sequence[int] = (),
) -> TrainReport:
    """Train (or resume training) a model on ``data``; the EMA model is saved to ``out`` when done.

    Args:
        out: the model folder; ``out/checkpoint/`` holds the resumable state while training.
        stop_after: stop (checkpointed) after this many steps in this run, as an interruption would.
        exclude: rows of ``data`` never trained on, with every other random choice kept as training on all of
            ``data`` makes it (paired leave-K-out retraining; see ``step_batch``).
    """
    out = Path(out)
    started = time.perf_counter()
    device = resolve_device(config.device)
    model = TextToImageModel.create(model_config, data.captions, seed=config.seed).to(device)
    params = _params(model)
    opt = torch.optim.AdamW(list(params.values()), lr=config.lr, weight_decay=config.weight_decay)
    ema = {k: v.detach().clone() for k, v in params.items()}
    identity = {"model": model_config.to_dict(), "train": dataclasses.asdict(config), "data": data_fingerprint(data)}
    excluded = sorted({int(i) for i in exclude})
    kept = None
    if excluded:
        if excluded[0] < 0 or excluded[-1] >= len(data) or len(excluded) == len(data):
            raise ValueError(f"exclude must name some, not all, of the {len(data)} rows; got {excluded}")
        identity["excluded"] = [data.paths[i] for i in excluded]
        kept = torch.from_numpy(np.setdiff1d(np.arange(len(data)), excluded))
    start, losses = _resume(out / CHECKPOINT, identity, params, ema, opt)
    if start:
        log.info("resuming from step %d (checkpoint in %s)", start, out / CHECKPOINT)
    images = data.images.to(device)
    data_on_device = TrainingSet(images, data.captions, data.paths, data.root)
    last = min(config.steps, start + stop_after) if stop_after is not None else config.steps
    steps = tracked(
        range(start, last), "train diffusion", progress=progress, on_progress=on_progress, cancel=cancel, unit="step"
    )
    model.unet.train()
    model.text_encoder.train()
    for step in steps:
        batch, captions, t, noise = step_batch(data_on_device, step, config, model_config.num_train_timesteps, kept)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, config)
        loss = model.losses(batch, model.encode_prompts(captions), t.to(device), noise.to(device)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        opt.step()
        with torch.no_grad():
            for k, p in params.items():
                ema[k].lerp_(p.detach(), 1 - config.ema_decay)
        losses.append(float(loss.item()))
        if hasattr(steps, "set_postfix"):
            steps.set_postfix(loss=f"{losses[-1]:.4f}")
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == last:
            _checkpoint(out / CHECKPOINT, step + 1, identity, params, ema, opt, losses)
    done = last
    if done >= config.steps:
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(ema[k])
        model.unet.eval()
        model.text_encoder.eval()
        model.save(out)
        atomic_write_json(out / "train_config.json", identity)
        atomic_write_json(out / "loss_log.json", losses)
    return TrainReport(out, done, start, losses, time.perf_counter() - started)


def _checkpoint(folder: Path, step: int, identity: dict, params: dict, ema: dict, opt, losses: list[float]) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in params.items()}
    tensors.update({f"ema.{k}": v.cpu().contiguous() for k, v in ema.items()})
    names = {id(p): k for k, p in params.items()}
    for p, state in opt.state.items():
        for key, value in state.items():
            tensors[f"opt.{names[id(p)]}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "state.safetensors") as tmp:
        save_file(tensors, str(tmp))
    atomic_write_json(folder / "state.json", {**identity, "step": step, "losses": losses})


def _resume(folder: Path, identity: dict, params: dict, ema: dict, opt) -> tuple[int, list[float]]:
    """Restore a checkpoint of the same model, training options and data; (0, []) when there is none."""
    try:
        meta = json.loads((folder / "state.json").read_text())
        tensors = load_file(str(folder / "state.safetensors"))
    except (OSError, ValueError):
        return 0, []
    if {k: meta.get(k) for k in identity} != json.loads(json.dumps(identity)):
        log.warning("%s: a checkpoint of another configuration or data; training from scratch", folder)
        return 0, []
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(tensors[f"model.{k}"])
            ema[k].copy_(tensors[f"ema.{k}"])
    for k, p in params.items():
        state = {key.rsplit(".", 1)[1]: v.to(p.device) for key, v in tensors.items() if key.startswith(f"opt.{k}.")}
        if state:
            opt.state[p] = state
    return int(meta["step"]), list(meta["losses"])
