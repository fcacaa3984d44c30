"""The training set of a demo diffusion model: images at the model's resolution, with their captions.

Captions come from a JSON-lines file (``{"path": ..., "caption": ...}`` per line, paths relative to the image
folder), as ``attribute demo`` writes for its corpus (``dataset/demo/captions.jsonl``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..core.errors import AttributionError
from ..core.images import load_rgb
from ..core.paths import display_path


@dataclass
class TrainingSet:
    """N images [N, 3, r, r] in [-1, 1], their captions and paths (relative to ``root``)."""

    images: torch.Tensor
    captions: list[str]
    paths: list[str]
    root: Path

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, keep: np.ndarray) -> TrainingSet:
        """The rows where ``keep`` [N] is True (leave-K-out retraining)."""
        idx = np.flatnonzero(keep)
        return TrainingSet(self.images[idx], [self.captions[i] for i in idx], [self.paths[i] for i in idx], self.root)


def image_tensor(img: Image.Image, resolution: int) -> torch.Tensor:
    """An RGB image -> [3, r, r] in [-1, 1] (centre square, area-averaged down to the model's resolution)."""
    w, h = img.size
    side = min(w, h)
    img = img.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    img = img.resize((resolution, resolution), Image.BOX if side >= resolution else Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def tensor_image(x: torch.Tensor) -> Image.Image:
    """[3, r, r] in [-1, 1] -> an RGB image."""
    arr = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)


def read_captions(path: Path) -> dict[str, str]:
    """``{"path", "caption"}`` JSON lines -> {path: caption}."""
    out: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise AttributionError(f"{display_path(path)}: captions file not found (run `attribute demo`)") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out[str(row["path"])] = str(row["caption"])
        except (ValueError, KeyError, TypeError):
            raise AttributionError(f'{display_path(path)}: line {n} is not {{"path": …, "caption": …}}') from None
    return out


def load_training_set(captions_file: Path, root: Path, resolution: int, prefix: str = "") -> TrainingSet:
    """Every captioned image (whose path starts with ``prefix``) at the model's resolution, in path order."""
    captions = {p: c for p, c in sorted(read_captions(captions_file).items()) if p.startswith(prefix)}
    if not captions:
        raise AttributionError(f"{display_path(captions_file)}: no captioned images (prefix {prefix!r})")
    images = torch.stack([image_tensor(load_rgb(root / p), resolution) for p in captions])
    return TrainingSet(images, list(captions.values()), list(captions), root)
