"""Loading ViT checkpoints (timm, DINO, MoCo v3 layouts) into timm's VisionTransformer without a classifier."""

from __future__ import annotations

from pathlib import Path

import torch

from .registry import load_into


def load_vit_state(arch: str, state: object, path: Path, backbone: str) -> torch.nn.Module:
    """timm ``arch`` with ``num_classes=0`` (pooled CLS token after the final norm), loaded strictly from
    ``state``: timm's ``checkpoint_filter_fn`` adapts other layouts, and classifier weights are dropped."""
    import timm
    from timm.models.vision_transformer import checkpoint_filter_fn

    model = timm.create_model(arch, pretrained=False, num_classes=0)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
        state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}
        state = {k: v for k, v in checkpoint_filter_fn(state, model).items() if not k.startswith("head.")}
    return load_into(model, state, path, backbone)
