"""Stable Diffusion in the diffusers folder layout (``unet``, ``vae``, ``text_encoder``, ``tokenizer``,
``scheduler``), behind the same interface as the demo model, in latent space: attribution by unlearning, sampling
and customisation run on it unchanged (docs/method.md §6). Weights are read as safetensors only.

Real Stable Diffusion weights were not run here (no model hub is reachable); the tests build a tiny,
randomly initialised pipeline of the same architecture and run the code on it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.errors import CheckpointError
from ..core.paths import display_path
from .config import ModelConfig
from .model import TextToImageModel

PIPELINE_CLASSES = ("StableDiffusionPipeline",)


def is_stable_diffusion_folder(folder: Path) -> bool:
    try:
        return json.loads((folder / "model_index.json").read_text()).get("_class_name") in PIPELINE_CLASSES
    except (OSError, ValueError, AttributeError):
        return False


@dataclass
class StableDiffusionModel(TextToImageModel):
    """A latent-space model: the UNet denoises VAE latents; prompts go through CLIP's tokenizer and text model."""

    vae: torch.nn.Module | None = None

    def to(self, device: torch.device | str) -> StableDiffusionModel:
        super().to(device)
        self.vae.to(device)
        return self

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        ids = self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return self.text_encoder(ids.to(self.device))[0]

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        latents = self.vae.encode(images.to(self.device)).latent_dist.mean
        return latents * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(x / self.vae.config.scaling_factor).sample

    def sample_shape(self) -> tuple[int, int, int]:
        side = self.unet.config.sample_size
        return (self.unet.config.in_channels, side, side)

    def fingerprint(self) -> str:
        """A hash of every weight's name and shape and a strided sample of its values (hashing billions of weights
        at every load would take longer than it tells)."""
        h = hashlib.sha256()
        for module in (self.unet, self.text_encoder, self.vae):
            for name, tensor in module.state_dict().items():
                h.update(f"{name}{tuple(tensor.shape)}".encode())
                h.update(tensor.detach().flatten()[::997].cpu().float().numpy().tobytes())
        return h.hexdigest()[:16]

    def save(self, folder: Path | str) -> None:
        raise NotImplementedError("a Stable Diffusion folder is saved with diffusers' own save_pretrained")


def load_stable_diffusion(folder: Path | str, device: str | torch.device = "cpu") -> StableDiffusionModel:
    """Load the parts of a diffusers Stable Diffusion folder (safetensors weights only).

    Raises:
        CheckpointError: a part is missing or unreadable, naming it.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    parts = {}
    loaders = {
        "unet": lambda: UNet2DConditionModel.from_pretrained(folder, subfolder="unet", use_safetensors=True),
        "vae": lambda: AutoencoderKL.from_pretrained(folder, subfolder="vae", use_safetensors=True),
        "text_encoder": lambda: CLIPTextModel.from_pretrained(folder / "text_encoder", use_safetensors=True),
        "tokenizer": lambda: CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        "scheduler": lambda: DDPMScheduler.from_pretrained(folder, subfolder="scheduler"),
    }
    for name, load in loaders.items():
        try:
            parts[name] = load()
        except (OSError, ValueError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{display_path(folder)}: cannot load the {name} ({detail})") from None
    unet, vae = parts["unet"], parts["vae"]
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    config = ModelConfig(
        resolution=unet.config.sample_size * scale,
        num_train_timesteps=parts["scheduler"].config.num_train_timesteps,
        text_dim=unet.config.cross_attention_dim,
    )
    model = StableDiffusionModel(
        config,
        unet.eval(),
        parts["text_encoder"].eval(),
        parts["tokenizer"],
        parts["scheduler"],
        str(folder),
        vae.eval(),
    )
    return model.to(device)
