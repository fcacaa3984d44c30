"""Tuned linear heads: ``real_head`` for training images, ``synth_head`` for generated queries (REFERENCE §3).

Checkpoint format (as the AbC authors release it): ``{"real_mapper": {"weight": [d, d], "bias": [d]},
"synth_mapper": {...}}``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoints import load_checkpoint, save_checkpoint
from .errors import CheckpointError
from .paths import display_path

HEAD_KEYS = ("real_mapper", "synth_mapper")


class LinearHead(torch.nn.Module):
    """``Linear(d, d)`` initialised to the identity with zero bias; output L2-normalised."""

    def __init__(self, dim: int):
        super().__init__()
        self.mapper = torch.nn.Linear(dim, dim)
        with torch.no_grad():
            self.mapper.weight.copy_(torch.eye(dim))
            self.mapper.bias.zero_()

    @property
    def dim(self) -> int:
        return self.mapper.in_features

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Raw features [B, d] -> unit-norm attribution features [B, d]."""
        return torch.nn.functional.normalize(self.mapper(feats.float()), dim=-1)

    @torch.inference_mode()
    def map_numpy(self, feats: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """Raw features (numpy or memmap) [N, d] -> unit-norm float32 [N, d], in chunks (constant memory)."""
        out = np.empty((feats.shape[0], self.dim), dtype=np.float32)
        for i in range(0, feats.shape[0], batch_size):
            chunk = torch.from_numpy(np.array(feats[i : i + batch_size], dtype=np.float32))
            out[i : i + batch_size] = self(chunk).numpy()
        return out


@dataclass
class Heads:
    """The pair of heads of one feature space, and where they came from."""

    real_head: LinearHead  # applied to training images and exemplars
    synth_head: LinearHead  # applied to generated (query) images
    source: str  # the checkpoint path, or "identity"

    @property
    def dim(self) -> int:
        return self.real_head.dim

    def fingerprint(self) -> str:
        """A short hash of the real head's weights: an index built with other weights is stale."""
        h = hashlib.sha256()
        for t in self.real_head.state_dict().values():
            h.update(t.detach().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def state_dict(self) -> dict:
        """The released checkpoint layout."""
        return {
            "real_mapper": {k: v.detach().clone() for k, v in self.real_head.mapper.state_dict().items()},
            "synth_mapper": {k: v.detach().clone() for k, v in self.synth_head.mapper.state_dict().items()},
        }


def identity_heads(dim: int) -> Heads:
    """Heads that only L2-normalise (the untuned, "pretrained" space)."""
    return Heads(LinearHead(dim).eval(), LinearHead(dim).eval(), "identity")


def load_heads(path: Path | str, dim: int) -> Heads:
    """Load released-format heads for a ``dim``-dimensional backbone.

    Raises:
        CheckpointError: missing file, unsafe pickle, missing keys, or shapes that do not fit ``dim``.
    """
    path = Path(path)
    state = load_checkpoint(path, "head checkpoint")
    shown = display_path(path)
    if not isinstance(state, dict) or not all(k in state for k in HEAD_KEYS):
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{shown}: not a head checkpoint: expected keys {list(HEAD_KEYS)}, found {found}")
    heads = []
    for key in HEAD_KEYS:
        part = state[key]
        if not isinstance(part, dict) or "weight" not in part or "bias" not in part:
            raise CheckpointError(f"{shown}: {key} must hold 'weight' and 'bias' tensors")
        w, b = part["weight"], part["bias"]
        if tuple(w.shape) != (dim, dim) or tuple(b.shape) != (dim,):
            raise CheckpointError(
                f"{shown}: {key} has weight {tuple(w.shape)} and bias {tuple(b.shape)}, but the backbone's "
                f"features are {dim}-d (expected [{dim}, {dim}] and [{dim}]); is this the head of another backbone?"
            )
        head = LinearHead(dim)
        head.mapper.load_state_dict({"weight": w.float(), "bias": b.float()})
        heads.append(head.eval())
    return Heads(heads[0], heads[1], str(path))


def save_heads(heads: Heads, path: Path | str) -> None:
    """Write heads in the released format (loadable by this library and the original code)."""
    save_checkpoint(heads.state_dict(), path)
