"""The demo text-to-image diffusion model (diffusers UNet with cross-attention, pixel space): configuration,
training, sampling, customisation.

The names below are imported from their modules on first use (PEP 562), so importing ``attribution_core`` — or
only ``diffusion.data`` — does not import diffusers (seconds at every cold start of the CLI, explorer and service).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.lazy import lazy_exports

_EXPORTS = {
    "TINY_MODEL": "config",
    "ModelConfig": "config",
    "TrainConfig": "config",
    "TrainingSet": "data",
    "image_tensor": "data",
    "load_training_set": "data",
    "read_captions": "data",
    "tensor_image": "data",
    "load_model": "load",
    "TextToImageModel": "model",
    "cross_attention_kv": "model",
    "Generation": "generation",
    "SamplerSettings": "generation",
    "generate": "sample",
    "generate_image": "sample",
    "read_generation": "generation",
    "save_generated": "generation",
    "TrainReport": "train",
    "train_diffusion": "train",
}

__all__ = [
    "TINY_MODEL",
    "Generation",
    "ModelConfig",
    "SamplerSettings",
    "TextToImageModel",
    "TrainConfig",
    "TrainReport",
    "TrainingSet",
    "cross_attention_kv",
    "generate",
    "generate_image",
    "image_tensor",
    "load_model",
    "load_training_set",
    "read_captions",
    "read_generation",
    "save_generated",
    "tensor_image",
    "train_diffusion",
]

if TYPE_CHECKING:
    from .config import TINY_MODEL, ModelConfig, TrainConfig
    from .data import TrainingSet, image_tensor, load_training_set, read_captions, tensor_image
    from .generation import Generation, SamplerSettings, read_generation, save_generated
    from .load import load_model
    from .model import TextToImageModel, cross_attention_kv
    from .sample import generate, generate_image
    from .train import TrainReport, train_diffusion


__getattr__ = lazy_exports(__name__, _EXPORTS)
