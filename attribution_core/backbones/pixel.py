"""A downsampled-RGB baseline: no learning at all, so that "the feature space matters" is visible."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.constants import HALF_MEAN, HALF_STD
from .registry import BackboneSpec, Preprocess, register_backbone

PIXEL_SIDE = 16  # images are reduced to 16 x 16 RGB -> 768 numbers


def load_pixel(path: Path | None) -> torch.nn.Module:
    return torch.nn.Flatten()


register_backbone(
    BackboneSpec(
        name="pixel",
        dim=3 * PIXEL_SIDE * PIXEL_SIDE,
        preprocess=Preprocess(
            resize=PIXEL_SIDE, crop=PIXEL_SIDE, mean=HALF_MEAN, std=HALF_STD, interpolation="bilinear"
        ),
        description="Downsampled RGB pixels (16 x 16), a no-learning baseline",
        load=load_pixel,
        needs_weights=False,
    )
)
