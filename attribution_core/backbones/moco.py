"""MoCo v3 ViT-B/16 (300 epochs) from the authors' local checkpoint: ``module.base_encoder.`` prefix stripped,
projection head removed; the CLS token after the final norm, 768-d."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.checkpoints import load_checkpoint
from ..core.constants import IMAGENET_MEAN, IMAGENET_STD
from ._timm_vit import load_vit_state
from .registry import BackboneSpec, Preprocess, register_backbone

PREFIX = "module.base_encoder."


def load_moco(path: Path | None) -> torch.nn.Module:
    """Load ``vit-b-300ep.pth.tar`` (``{"state_dict": {"module.base_encoder.…", "module.momentum_encoder.…"}}``)."""
    state = load_checkpoint(path, "MoCo v3 checkpoint")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if isinstance(state, dict) and any(k.startswith(PREFIX) for k in state):
        state = {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}  # momentum encoder dropped
    return load_vit_state("vit_base_patch16_224", state, path, "moco")


register_backbone(
    BackboneSpec(
        name="moco",
        dim=768,
        preprocess=Preprocess(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        description="MoCo v3 ViT-B/16, 300 epochs (local checkpoint)",
        load=load_moco,
        weights_files=("vit-b-300ep.pth.tar", "moco_v3_vitb_300ep.pth"),
        download_hint=(
            "Download vit-b-300ep.pth.tar from the MoCo v3 release (facebookresearch/moco-v3) into weights/pretrained/."
        ),
    )
)
