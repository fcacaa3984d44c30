"""The demo text-to-image diffusion model (diffusers UNet with cross-attention, pixel space): configuration,
training, sampling, customisation."""

from .config import TINY_MODEL, ModelConfig, TrainConfig
from .data import TrainingSet, image_tensor, load_training_set, read_captions, tensor_image
from .load import load_model
from .model import TextToImageModel, cross_attention_kv
from .sample import Generation, SamplerSettings, generate, generate_image, read_generation, save_generated
from .train import TrainReport, train_diffusion

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
