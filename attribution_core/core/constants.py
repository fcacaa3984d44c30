"""Constants shared by several modules: image normalisations and the device default, written once."""

from __future__ import annotations

#: ImageNet per-channel mean and std on [0, 1] values (DINO, MoCo, SSCD, EfficientNet preprocessing).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: OpenAI CLIP's per-channel mean and std.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: Mean and std of 0.5 (timm's supervised ViT).
HALF_MEAN = (0.5, 0.5, 0.5)
HALF_STD = (0.5, 0.5, 0.5)

#: ``--device``: the default and help of every command and config (resolved by attribution_core/core/device.py).
DEFAULT_DEVICE = "auto"
DEVICE_HELP = "auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda or cuda:N"
