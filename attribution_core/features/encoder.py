"""AbC's encoder (docs/method.md §2–3): a backbone's features through the synth head (queries) and the real head (the
store's rows). A feature space is an encoder + a feature store + an index + a calibrator: the store holds the training
side, computed once (``attribute extract``); the index maps its rows through ``store_heads``; ``encode`` is the query
side.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..attribute.interface import Query, Sample
from ..backbones import Backbone
from ..core.images import load_rgb
from ..heads import Heads
from .files import file_features
from .registry import Encoder, register_encoder


@register_encoder
class BackboneEncoder(Encoder):
    """AbC's encoder: a backbone's features through the synth head (queries) and the real head (the store's rows)."""

    kind = "backbone"

    def __init__(self, backbone: Backbone, heads: Heads):
        self.backbone = backbone
        self.heads = heads.to(backbone.device)
        self._raw: dict[str, np.ndarray] = {}  # raw backbone features of files, by absolute path

    @property
    def store_heads(self) -> Heads:
        return self.heads

    def store_identity(self) -> tuple[str, int]:
        return self.backbone.name, self.backbone.dim

    def encode(self, queries: Sequence[Query]) -> np.ndarray:
        """Backbone and synth head on the backbone's device, one copy to the host at the index boundary."""
        raw = self.backbone.embed_images_tensor([q.image for q in queries])
        with torch.inference_mode():
            return self.heads.synth_head(raw).cpu().numpy()

    def encode_training(self, images: Sequence[Query]) -> np.ndarray:
        """Backbone and real head (the caption is not read)."""
        return self.heads.real_head.map_numpy(self.backbone.embed_images([q.image for q in images]))

    def warm(self, samples: Sequence[Sample], root: Path, name: str, progress: bool = True) -> None:
        """Raw backbone features of the files, extracted once into a cached store (``file_features``)."""
        self._raw.update(file_features([s.path for s in samples], self.backbone, root, name, progress=progress))

    def encode_files(self, samples: Sequence[Sample], side: str) -> np.ndarray:
        """Raw features from the cache (:meth:`warm`), else embedded now; then the synth head (queries) or the real
        head (training side)."""
        missing = [s for s in dict.fromkeys(str(s.path) for s in samples) if s not in self._raw]
        if missing:
            raw = self.backbone.embed_images([load_rgb(Path(p)) for p in missing])
            self._raw.update(zip(missing, raw, strict=True))
        raw = np.stack([self._raw[str(s.path)] for s in samples]).astype(np.float32)
        if side == "query":
            with torch.inference_mode():
                return self.heads.synth_head(torch.from_numpy(raw).to(self.backbone.device)).cpu().numpy()
        return self.heads.real_head.map_numpy(raw)
