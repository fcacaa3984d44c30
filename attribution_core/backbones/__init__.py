"""Backbones: name -> (model, preprocessing); real weights only, a clear error when they are absent."""

from . import clip, dino, efficientnet, moco, pixel, sscd, vit  # noqa: F401  (each registers itself)
from .registry import (
    Backbone,
    BackboneSpec,
    Preprocess,
    create_backbone,
    find_weights,
    get_backbone_spec,
    list_backbones,
    load_into,
    register_backbone,
)

__all__ = [
    "Backbone",
    "BackboneSpec",
    "Preprocess",
    "create_backbone",
    "find_weights",
    "get_backbone_spec",
    "list_backbones",
    "load_into",
    "register_backbone",
]
