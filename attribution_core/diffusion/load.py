"""Loading any supported text-to-image model folder: the demo's pixel-space model or a diffusers Stable Diffusion
folder (latent space), behind one interface."""

from __future__ import annotations

from pathlib import Path

import torch

from .data import TrainingSet
from .model import TextToImageModel, load_pixel_model
from .stable import is_stable_diffusion_folder, load_stable_diffusion


def load_model(folder: Path | str, device: str | torch.device = "cpu") -> TextToImageModel:
    """The model in ``folder``: Stable Diffusion when its ``model_index.json`` says so, else the demo layout.

    Raises:
        CheckpointError: not a model folder, or weights that do not fit; one line naming the part.
    """
    folder = Path(folder)
    if is_stable_diffusion_folder(folder):
        return load_stable_diffusion(folder, device)
    return load_pixel_model(folder, device)


def in_model_space(model: TextToImageModel, data: TrainingSet, batch: int = 32) -> TrainingSet:
    """The training images as the model denoises them: unchanged for a pixel model, VAE latents for Stable
    Diffusion (encoded once; flips are then taken in latent space)."""
    if type(model).encode_images is TextToImageModel.encode_images:
        return data
    with torch.no_grad():
        latents = torch.cat([model.encode_images(data.images[i : i + batch]).cpu() for i in range(0, len(data), batch)])
    return TrainingSet(latents, data.captions, data.paths, data.root)
