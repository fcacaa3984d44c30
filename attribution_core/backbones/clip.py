"""CLIP ViT-B/32 with OpenAI weights (open_clip ``ViT-B-32``), image tower only."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.checkpoints import load_checkpoint
from ..core.constants import CLIP_MEAN, CLIP_STD
from .registry import BackboneSpec, Preprocess, load_into, register_backbone


class _ImageTower(torch.nn.Module):
    """open_clip model -> ``encode_image`` features [B, 512] (unnormalised, as the AbC features are)."""

    def __init__(self, clip_model: torch.nn.Module):
        super().__init__()
        self.clip = clip_model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(images)


def load_clip(path: Path | None) -> torch.nn.Module:
    """Build open_clip ViT-B-32 and load a full open_clip state dict (``open_clip_pytorch_model.bin``)."""
    import open_clip

    model = open_clip.create_model("ViT-B-32", pretrained=None)
    state = load_checkpoint(path, "CLIP weights")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if isinstance(state, dict):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    load_into(model, state, path, "clip")
    return _ImageTower(model)


register_backbone(
    BackboneSpec(
        name="clip",
        dim=512,
        preprocess=Preprocess(resize=224, crop=224, mean=CLIP_MEAN, std=CLIP_STD),
        description="OpenAI CLIP ViT-B/32 (open_clip ViT-B-32, pretrained openai)",
        load=load_clip,
        weights_files=("clip_vit_b_32_openai.safetensors", "clip_vit_b_32_openai.bin", "clip_vit_b_32_openai.pt"),
        hub_files=(
            ("timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors"),
            ("timm/vit_base_patch32_clip_224.openai", "open_clip_pytorch_model.bin"),
        ),
        download_hint=(
            "Download open_clip_model.safetensors from the Hugging Face repo timm/vit_base_patch32_clip_224.openai "
            "and save it as weights/pretrained/clip_vit_b_32_openai.safetensors."
        ),
    )
)
