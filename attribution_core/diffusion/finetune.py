"""Fine-tuning a trained model on a small captioned set (the fine-tune testbed's full-set model and every subset
model; docs/counterfactual.md): the whole UNet and the embeddings of the set's new words are trained, the rest of
the text encoder is frozen (``train_text`` trains it too; the new words may learn faster, ``word_lr_scale``).

Why the whole UNet and not customisation's cross-attention key/value weights alone: on the demo model (trained on
photo views) a key/value fine-tune of 200 steps on the shapes set still draws photo textures (a held-out drawing's
loss 0.054), the whole UNet learns flat backgrounds and coloured shapes (0.038) for 20% more time per step (the
UNet has about a million weights; 0.20 s against 0.17 s per step of 32 images on 2 cores).

Each new word is a whole-word token (``PromptTokenizer.add_token``), so two captions that differ by one attribute
map to different rows even when the base model's vocabulary never saw the word. Every random choice of step ``s``
comes from ``train.step_batch`` (seeded by ``(seed, s)``), so a fine-tune that excludes some rows replays the
full-set fine-tune's batches with those slots given kept rows (paired, as leave-K-out's retrains).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..core.config import option
from ..core.constants import DEFAULT_DEVICE, DEVICE_HELP
from ..core.progress import tracked
from .config import TrainConfig
from .data import TrainingSet
from .model import TextToImageModel
from .train import lr_at, step_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneConfig:
    """A fine-tune's schedule (the testbed's subset models share it; only ``seed`` differs between their seeds)."""

    steps: int = option(150, "fine-tuning steps", minimum=1)
    batch_size: int = option(32, "images per step", minimum=1)
    lr: float = option(2e-3, "Adam learning rate of the UNet and the new words' embeddings", minimum=0)
    warmup: int = option(15, "warm-up steps", minimum=0)
    word_lr_scale: float = option(1.0, "the new words' embeddings learn at this multiple of --lr", minimum=0)
    train_text: bool = option(False, "also train the rest of the text encoder (positions, layers, final norm) at --lr")
    caption_dropout: float = option(0.1, "share of empty captions (guidance)", minimum=0, maximum=1)
    seed: int = option(0, "training seed: batches, flips, timesteps and noise")
    device: str = option(DEFAULT_DEVICE, DEVICE_HELP)

    def schedule(self) -> TrainConfig:
        """The same step-by-step random choices and learning-rate schedule as training from scratch."""
        return TrainConfig(
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            warmup=self.warmup,
            caption_dropout=self.caption_dropout,
            seed=self.seed,
            device=self.device,
        )

    def key(self) -> dict:
        """What changes the fine-tuned weights (the device does not; options at their first value are left out, so
        models fine-tuned before an option existed keep their key)."""
        first = {"word_lr_scale": 1.0, "train_text": False}
        return {
            k: v for k, v in dataclasses.asdict(self).items() if k != "device" and not (k in first and v == first[k])
        }


def add_words(model: TextToImageModel, words: Sequence[str]) -> list[int]:
    """Add ``words`` as whole-word tokens (new embedding rows, small noise seeded by the word list); their ids."""
    ids = [model.tokenizer.add_token(w) for w in words]
    before = model.text_encoder.token_embedding.num_embeddings
    torch.manual_seed(len(words))
    model.text_encoder.grow_vocabulary(model.tokenizer.vocab_size)
    model.text_encoder.to(model.device)
    if model.text_encoder.token_embedding.num_embeddings > before:
        log.debug("added %d word(s) to the vocabulary", model.text_encoder.token_embedding.num_embeddings - before)
    return ids


def finetune(
    model: TextToImageModel,
    data: TrainingSet,
    words: Sequence[str],
    config: FinetuneConfig = FinetuneConfig(),
    exclude: Sequence[int] = (),
    progress: bool = False,
) -> TextToImageModel:
    """Fine-tune ``model`` in place on ``data`` (minus the rows ``exclude``, paired) with ``words`` as new tokens.

    Returns:
        The same model, fine-tuned, in eval mode.
    """
    device = model.device
    ids = add_words(model, words)
    for p in [*model.unet.parameters(), *model.text_encoder.parameters()]:
        p.requires_grad_(False)
    embedding = model.text_encoder.token_embedding.weight
    text = [p for p in model.text_encoder.parameters() if p is not embedding] if config.train_text else []
    groups = [
        {"params": [*model.unet.parameters(), *text], "scale": 1.0},
        {"params": [embedding], "scale": config.word_lr_scale},
    ]
    trained = [p for g in groups for p in g["params"]]
    for p in trained:
        p.requires_grad_(True)
    only_new = torch.zeros(embedding.shape[0], 1, device=device)
    only_new[ids] = 1
    opt = torch.optim.Adam(groups, lr=config.lr)
    schedule = config.schedule()
    excluded = sorted({int(i) for i in exclude})
    kept = torch.from_numpy(np.setdiff1d(np.arange(len(data)), excluded)) if excluded else None
    images = TrainingSet(data.images.to(device), data.captions, data.paths, data.root)
    model.unet.train()
    for step in tracked(range(config.steps), "fine-tune", progress=progress, unit="step"):
        batch, captions, t, noise = step_batch(images, step, schedule, model.config.num_train_timesteps, kept)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, schedule) * group["scale"]
        loss = model.losses(batch, model.encode_prompts(captions), t.to(device), noise.to(device)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        embedding.grad.mul_(only_new)
        opt.step()
    for p in trained:
        p.requires_grad_(False)
    model.unet.eval()
    model.text_encoder.eval()
    return model
