"""The demo text-to-image model: a diffusers ``UNet2DConditionModel`` (pixel space, cross-attention as in Stable
Diffusion, so ``attn2.to_k`` / ``attn2.to_v`` exist), the prompt tokenizer and text encoder, and a DDPM noise
schedule; saved and loaded as a folder in the diffusers layout, weights as safetensors.

Folder layout (``model_index.json`` names the parts)::

    MODEL/unet/{config.json, diffusion_pytorch_model.safetensors}   diffusers' own save_pretrained
    MODEL/text_encoder/{config.json, model.safetensors}
    MODEL/tokenizer/tokenizer.json                                   the compact vocabulary (see ``text``)
    MODEL/scheduler/scheduler_config.json                            diffusers' DDPMScheduler
    MODEL/model_config.json                                          ModelConfig
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from safetensors.torch import load_file, save_file

from ..core.errors import CheckpointError
from ..core.fileio import atomic_path, atomic_write_json
from ..core.paths import display_path
from .config import ModelConfig
from .text import PromptTokenizer, TextEncoder

MODEL_INDEX = "model_index.json"


def build_unet(config: ModelConfig) -> UNet2DConditionModel:
    """A fresh, seeded-by-caller UNet of ``config`` (cross-attention where ``attention_levels`` says)."""
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in config.attention_levels)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(config.attention_levels))
    return UNet2DConditionModel(
        sample_size=config.resolution,
        in_channels=3,
        out_channels=3,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        norm_num_groups=config.norm_num_groups,
        cross_attention_dim=config.text_dim,
        attention_head_dim=8,
        mid_block_type="UNetMidBlock2DCrossAttn",
    )


def build_scheduler(config: ModelConfig) -> DDPMScheduler:
    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        prediction_type="epsilon",
        clip_sample=True,
    )


@dataclass
class TextToImageModel:
    """Every part of the model, on one device."""

    config: ModelConfig
    unet: UNet2DConditionModel
    text_encoder: TextEncoder
    tokenizer: PromptTokenizer
    scheduler: DDPMScheduler
    source: str = ""  # the folder it was loaded from

    @classmethod
    def create(cls, config: ModelConfig, captions: list[str], seed: int = 0) -> TextToImageModel:
        """A new, randomly initialised model (for training) whose vocabulary covers ``captions``."""
        torch.manual_seed(seed)
        tokenizer = PromptTokenizer(config.context_length)
        tokenizer.learn(captions)
        text = TextEncoder(
            tokenizer.vocab_size, config.text_dim, config.text_layers, config.text_heads, config.context_length
        )
        return cls(config, build_unet(config), text, tokenizer, build_scheduler(config))

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def to(self, device: torch.device | str) -> TextToImageModel:
        self.unet.to(device)
        self.text_encoder.to(device)
        return self

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> text features [B, L, text_dim] for the UNet's cross-attention."""
        return self.text_encoder(self.tokenizer(prompts).to(self.device))

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Pixel images [B, 3, r, r] in [-1, 1] -> what the UNet denoises (the pixels themselves here; latents for a
        latent-space model)."""
        return images.to(self.device)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """What the UNet denoises -> pixel images in [-1, 1] (the inverse of :meth:`encode_images`)."""
        return x

    def sample_shape(self) -> tuple[int, int, int]:
        """The shape [c, h, w] of one sample the UNet denoises."""
        r = self.config.resolution
        return (3, r, r)

    def predict_noise(self, noisy: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.unet(noisy, t, encoder_hidden_states=text).sample

    def losses(self, images: torch.Tensor, text: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Per-sample DDPM loss: mean squared error of the predicted noise.

        Args:
            images: [B, 3, r, r] in [-1, 1]; text: [B, L, d] encoded prompts; t: [B] timesteps; noise: [B, 3, r, r].

        Returns:
            [B] losses.
        """
        noisy = self.scheduler.add_noise(images, noise, t)
        pred = self.predict_noise(noisy, t, text)
        return ((pred - noise) ** 2).flatten(1).mean(dim=1)

    def fingerprint(self) -> str:
        """A short hash of every weight and the vocabulary: caches and generated images name the model by it."""
        h = hashlib.sha256(json.dumps(self.tokenizer.state(), sort_keys=True).encode())
        for module in (self.unet, self.text_encoder):
            for name, tensor in module.state_dict().items():
                h.update(name.encode())
                h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def save(self, folder: Path | str) -> None:
        """Write the model folder (each file atomically; safetensors weights)."""
        folder = Path(folder)
        self.unet.save_pretrained(folder / "unet", safe_serialization=True)
        (folder / "text_encoder").mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "text_encoder" / "model.safetensors") as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.text_encoder.state_dict().items()}, str(tmp))
        atomic_write_json(folder / "text_encoder" / "config.json", {"vocab_size": self.tokenizer.vocab_size})
        atomic_write_json(folder / "tokenizer" / "tokenizer.json", self.tokenizer.state())
        self.scheduler.save_pretrained(folder / "scheduler")
        atomic_write_json(folder / "model_config.json", self.config.to_dict())
        atomic_write_json(
            folder / MODEL_INDEX,
            {
                "_class_name": "TextToImageModel",
                "library": "attribution_core",
                "parts": ["unet", "text_encoder", "tokenizer", "scheduler"],
            },
        )


def load_pixel_model(folder: Path | str, device: str | torch.device = "cpu") -> TextToImageModel:
    """Load a demo-model folder; safetensors only, so loading never runs code from the file.

    Raises:
        CheckpointError: not a model folder, or weights that do not fit the recorded configuration.
    """
    folder = Path(folder)
    shown = display_path(folder)
    if not (folder / MODEL_INDEX).is_file():
        raise CheckpointError(
            f"{shown}: not a diffusion model folder (no {MODEL_INDEX}); train one with "
            "`attribute diffusion train` or pass --model DIR"
        )
    try:
        config = ModelConfig.from_dict(json.loads((folder / "model_config.json").read_text()))
        tokenizer = PromptTokenizer.from_state(json.loads((folder / "tokenizer" / "tokenizer.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{shown}: damaged model folder ({exc})") from None
    unet = build_unet(config)
    _load_weights(unet, folder / "unet" / "diffusion_pytorch_model.safetensors", shown)
    text = TextEncoder(
        tokenizer.vocab_size, config.text_dim, config.text_layers, config.text_heads, config.context_length
    )
    _load_weights(text, folder / "text_encoder" / "model.safetensors", shown)
    scheduler = DDPMScheduler.from_pretrained(folder / "scheduler")
    model = TextToImageModel(config, unet.eval(), text.eval(), tokenizer, scheduler, str(folder))
    return model.to(device)


def _load_weights(module: torch.nn.Module, path: Path, shown: str) -> None:
    """``module.load_state_dict`` from a safetensors file, with one-line errors for a misfit."""
    if not path.is_file():
        raise CheckpointError(f"{shown}: missing {path.name} in {path.parent.name}/ (only safetensors are read)")
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # a damaged file can fail anywhere in the reader
        raise CheckpointError(f"{display_path(path)}: not a readable safetensors file ({exc})") from None
    own = module.state_dict()
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state]
    if wrong or missing:
        detail = (
            f"{wrong[0]}: file {tuple(state[wrong[0]].shape)}, model {tuple(own[wrong[0]].shape)}"
            if wrong
            else f"missing {missing[0]}"
        )
        raise CheckpointError(f"{display_path(path)}: weights do not fit the model's configuration ({detail})")
    module.load_state_dict(state, strict=False)


def cross_attention_kv(unet: UNet2DConditionModel) -> dict[str, torch.nn.Parameter]:
    """The cross-attention key/value weights (``attn2.to_k``, ``attn2.to_v``): what unlearning and customisation
    update."""
    return {n: p for n, p in unet.named_parameters() if ".attn2.to_k." in n or ".attn2.to_v." in n}
