"""Heads: ``real_head`` for training images, ``synth_head`` for generated queries; linear | mlp | channel."""

from . import channel, linear, mlp  # noqa: F401  (each registers itself)
from .channel import ChannelHead
from .linear import LinearHead
from .mlp import MLPHead
from .registry import (
    HEAD_KEYS,
    Head,
    Heads,
    create_heads,
    detect_head_kind,
    head_type,
    heads_from_state,
    identity_heads,
    list_head_types,
    load_heads,
    register_head,
    save_heads,
)

__all__ = [
    "HEAD_KEYS",
    "ChannelHead",
    "Head",
    "Heads",
    "LinearHead",
    "MLPHead",
    "create_heads",
    "detect_head_kind",
    "head_type",
    "heads_from_state",
    "identity_heads",
    "list_head_types",
    "load_heads",
    "register_head",
    "save_heads",
]
