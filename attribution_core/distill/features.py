"""What the student sees (docs/method.md §9): frozen image features of a registered backbone beside text features
from the diffusion model's own text encoder (the query's prompt; a training image's caption), each L2-normalised.

Text features are the text encoder's output averaged over the prompt's token positions: for Stable Diffusion
that is its CLIP text encoder, for the demo model its jointly trained encoder. A query without a prompt gets a
zero text part (image features alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..backbones import Backbone
from ..core.images import load_rgb
from ..diffusion.model import TextToImageModel
from .student import joint_features


@torch.no_grad()
def text_features(model: TextToImageModel, prompts: Sequence[str | None], batch: int = 256) -> np.ndarray:
    """[n, d_text] float32: the text encoder's output averaged over token positions (zeros for no prompt)."""
    out = []
    for i in range(0, len(prompts), batch):
        chunk = list(prompts[i : i + batch])
        feats = model.encode_prompts([p or "" for p in chunk]).float().mean(dim=1).cpu().numpy()
        feats[[p is None for p in chunk]] = 0.0
        out.append(feats)
    return np.concatenate(out).astype(np.float32)


def image_features(backbone: Backbone, images: Sequence[Image.Image | Path]) -> np.ndarray:
    """[n, d_image] float32 features of images (loaded from files where paths are given)."""
    loaded = [img if isinstance(img, Image.Image) else load_rgb(Path(img)) for img in images]
    return np.asarray(backbone.embed_images(loaded), dtype=np.float32)


def student_inputs(
    backbone: Backbone, model: TextToImageModel, images: Sequence[Image.Image | Path], texts: Sequence[str | None]
) -> np.ndarray:
    """The student's input for each (image, text): [n, d_image + d_text]."""
    return joint_features(image_features(backbone, images), text_features(model, texts))
