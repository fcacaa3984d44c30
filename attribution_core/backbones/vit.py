"""Supervised ViT-B/16 at 384 px (timm ``vit_base_patch16_384``): the CLS token after the final norm, 768-d."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.checkpoints import load_checkpoint
from ..core.constants import HALF_MEAN, HALF_STD
from ._timm_vit import load_vit_state
from .registry import BackboneSpec, Preprocess, register_backbone


def load_vit(path: Path | None) -> torch.nn.Module:
    return load_vit_state("vit_base_patch16_384", load_checkpoint(path, "ViT weights"), path, "vit")


register_backbone(
    BackboneSpec(
        name="vit",
        dim=768,
        preprocess=Preprocess(resize=384, crop=384, mean=HALF_MEAN, std=HALF_STD),
        description="ViT-B/16, supervised ImageNet, 384 px (timm vit_base_patch16_384)",
        load=load_vit,
        weights_files=("vit_base_patch16_384.safetensors", "vit_base_patch16_384.pth"),
        hub_files=(("timm/vit_base_patch16_384.augreg_in21k_ft_in1k", "model.safetensors"),),
        download_hint=(
            "Download model.safetensors from the Hugging Face repo timm/vit_base_patch16_384.augreg_in21k_ft_in1k "
            "and save it as weights/pretrained/vit_base_patch16_384.safetensors."
        ),
    )
)
