"""DINO ViT-B/16 (timm ``vit_base_patch16_224.dino``): the CLS token after the final norm, 768-d."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.checkpoints import load_checkpoint
from ..core.constants import IMAGENET_MEAN, IMAGENET_STD
from ._timm_vit import load_vit_state
from .registry import BackboneSpec, Preprocess, register_backbone


def load_dino(path: Path | None) -> torch.nn.Module:
    """timm's DINO ViT-B/16 without a classifier, from timm-format or original DINO weights."""
    return load_vit_state("vit_base_patch16_224.dino", load_checkpoint(path, "DINO weights"), path, "dino")


register_backbone(
    BackboneSpec(
        name="dino",
        dim=768,
        preprocess=Preprocess(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        description="DINO ViT-B/16 (timm vit_base_patch16_224.dino)",
        load=load_dino,
        weights_files=("dino_vitb16.safetensors", "dino_vitbase16_pretrain.pth", "dino_vitb16.pth"),
        hub_files=(
            ("timm/vit_base_patch16_224.dino", "model.safetensors"),
            ("timm/vit_base_patch16_224.dino", "pytorch_model.bin"),
        ),
        download_hint=(
            "Download model.safetensors from the Hugging Face repo timm/vit_base_patch16_224.dino (or DINO's own "
            "dino_vitbase16_pretrain.pth) into weights/pretrained/ (as dino_vitb16.safetensors or "
            "dino_vitbase16_pretrain.pth)."
        ),
    )
)
