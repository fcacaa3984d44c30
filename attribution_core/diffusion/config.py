"""The demo text-to-image model's configuration: architecture and training, one typed dataclass each.

Saved as JSON beside the weights (``train_config.json``), so a model folder says how it was made and
``attribute diffusion train`` reproduces it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..core.config import option
from ..core.constants import DEFAULT_DEVICE, DEVICE_HELP


@dataclass(frozen=True)
class ModelConfig:
    """Architecture: a diffusers ``UNet2DConditionModel`` in pixel space and a small text transformer."""

    resolution: int = 16  # images are resolution x resolution RGB
    block_out_channels: tuple[int, ...] = (32, 64)  # UNet widths per resolution level (16 and 8 px)
    attention_levels: tuple[bool, ...] = (False, True)  # cross-attention (attn2) at 8 px (and the mid block), not 16
    layers_per_block: int = 1
    norm_num_groups: int = 8
    text_dim: int = 64  # width of the text transformer = cross_attention_dim of the UNet
    text_layers: int = 2
    text_heads: int = 4
    context_length: int = 16  # tokens per prompt (open_clip's BPE, start/end tokens included)
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in known}
        return cls(**values)


@dataclass(frozen=True)
class TrainConfig:
    """Options of ``attribute diffusion train`` (the CLI's flags are generated from these fields)."""

    steps: int = option(2000, "training steps", minimum=1)
    batch_size: int = option(64, "images per step", minimum=1)
    lr: float = option(2e-3, "AdamW learning rate (peak, after warm-up; cosine decay to 10%)", minimum=0)
    warmup: int = option(100, "warm-up steps", minimum=0)
    weight_decay: float = option(0.0, "AdamW weight decay", minimum=0)
    ema_decay: float = option(
        0.995, "decay of the exponential moving average of the weights (what is sampled)", minimum=0, maximum=1
    )
    caption_dropout: float = option(
        0.1, "share of captions replaced by the empty prompt (classifier-free guidance)", minimum=0, maximum=1
    )
    flip: bool = option(True, "train on random horizontal flips too")
    seed: int = option(0, "random seed: same seed, same model")
    checkpoint_every: int = option(
        250, "steps between checkpoints (an interrupted run resumes from the last)", minimum=1
    )
    device: str = option(DEFAULT_DEVICE, DEVICE_HELP)


#: A configuration for tests and CI: trains in seconds.
TINY_MODEL = ModelConfig(block_out_channels=(16, 32), attention_levels=(False, True), text_dim=32, text_layers=1)


@dataclass(frozen=True)
class CustomizeConfig:
    """Options of ``attribute diffusion customize``."""

    steps: int = option(150, "fine-tuning steps")
    batch_size: int = option(12, "exemplar views per step (random flips), plus as many regularisation images")
    lr: float = option(2e-3, "Adam learning rate of the k/v weights and the new token's embedding")
    seed: int = option(0, "random seed")
