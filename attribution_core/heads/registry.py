"""The head registry and the pair of heads a feature space uses (docs/method.md §3).

A head maps raw backbone features [B, d] to unit-norm attribution features [B, d_out]. The authors' code has
three head types (``linear``, ``mlp``, ``channel``); each is one module here that registers itself. A checkpoint
in the released layout ``{"real_mapper": <mapper state>, "synth_mapper": <mapper state>}`` does not name its
type, so :func:`load_heads` recognises it from the keys and shapes of the mapper state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..core.checkpoints import load_checkpoint, save_checkpoint
from ..core.errors import AttributionError, CheckpointError
from ..core.paths import display_path

HEAD_KEYS = ("real_mapper", "synth_mapper")


class Head(torch.nn.Module):
    """Base class of a head: ``self.mapper`` maps features; the output is L2-normalised."""

    kind: ClassVar[str] = ""
    mapper: torch.nn.Module

    @property
    def in_dim(self) -> int:
        raise NotImplementedError

    @property
    def out_dim(self) -> int:
        return self.in_dim

    @property
    def device(self) -> torch.device:
        """Where the head's weights are (the CPU for a head without any)."""
        return next((p.device for p in self.parameters()), torch.device("cpu"))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Raw features [B, d] -> unit-norm attribution features [B, d_out]."""
        return torch.nn.functional.normalize(self.mapper(feats.float()), dim=-1)

    @torch.inference_mode()
    def map_numpy(self, feats: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """Raw features (numpy or memmap) [N, d] -> unit-norm float32 [N, d_out], in chunks (constant memory)."""
        out = np.empty((feats.shape[0], self.out_dim), dtype=np.float32)
        for i in range(0, feats.shape[0], batch_size):
            chunk = torch.from_numpy(np.array(feats[i : i + batch_size], dtype=np.float32)).to(self.device)
            out[i : i + batch_size] = self(chunk).cpu().numpy()
        return out

    def identity_drift(self) -> torch.Tensor:
        """How far the head is from "no change" (the ``identity_penalty`` of training)."""
        raise AttributionError(f"the identity penalty is not defined for {self.kind} heads; use linear or channel")

    @classmethod
    def matches(cls, state: dict[str, Any]) -> bool:
        """Whether a released mapper state has this head type's layout."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict[str, Any], in_dim: int) -> Head:
        """A head of this type built to fit ``state`` (shapes inferred from it); ValueError if it does not fit."""
        raise NotImplementedError


_HEAD_TYPES: dict[str, type[Head]] = {}


def register_head(cls: type[Head]) -> type[Head]:
    """Add a head type (each head module calls this once at import); usable as a class decorator."""
    _HEAD_TYPES[cls.kind] = cls
    return cls


def list_head_types() -> list[str]:
    return sorted(_HEAD_TYPES)


def head_type(kind: str) -> type[Head]:
    try:
        return _HEAD_TYPES[kind]
    except KeyError:
        raise AttributionError(f"unknown head type {kind!r}; known: {', '.join(list_head_types())}") from None


@dataclass
class Heads:
    """The pair of heads of one feature space, and where they came from."""

    real_head: Head  # applied to training images and exemplars
    synth_head: Head  # applied to generated (query) images
    source: str  # the checkpoint path, or "identity"

    @property
    def kind(self) -> str:
        return self.real_head.kind

    @property
    def in_dim(self) -> int:
        return self.real_head.in_dim

    @property
    def dim(self) -> int:
        """The attribution space's dimension (what the index holds)."""
        return self.real_head.out_dim

    def fingerprint(self) -> str:
        """A short hash of the head type and the real head's weights: an index built with others is stale."""
        h = hashlib.sha256(self.kind.encode())
        for name, t in self.real_head.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def state_dict(self) -> dict:
        """The released checkpoint layout."""
        return {
            "real_mapper": {k: v.detach().clone().cpu() for k, v in self.real_head.mapper.state_dict().items()},
            "synth_mapper": {k: v.detach().clone().cpu() for k, v in self.synth_head.mapper.state_dict().items()},
        }

    def eval(self) -> Heads:
        self.real_head.eval()
        self.synth_head.eval()
        return self

    def to(self, device: torch.device | str) -> Heads:
        """Both heads on ``device`` (in place; returns self): mapping the store to build an index, and each query,
        then run there."""
        self.real_head.to(device)
        self.synth_head.to(device)
        return self


def create_heads(kind: str, in_dim: int, **options: Any) -> Heads:
    """Fresh heads of type ``kind`` (identity where the type has one), e.g. for training."""
    cls = head_type(kind)
    return Heads(cls(in_dim, **options), cls(in_dim, **options), "new")  # type: ignore[call-arg]


def identity_heads(dim: int) -> Heads:
    """Heads that only L2-normalise (the untuned, "pretrained" space)."""
    heads = create_heads("linear", dim)
    heads.source = "identity"
    return heads.eval()


def detect_head_kind(state: dict[str, Any]) -> str | None:
    """The registered head type whose layout a released mapper state has, or None."""
    return next((kind for kind, cls in sorted(_HEAD_TYPES.items()) if cls.matches(state)), None)


def heads_from_state(state: dict, in_dim: int, shown: str = "heads") -> Heads:
    """Heads from a released-layout dict (both mappers of one type), checked against ``in_dim``.

    Raises:
        CheckpointError: missing keys, non-tensor values, an unknown layout, or shapes that do not fit.
    """
    if not isinstance(state, dict) or not all(k in state for k in HEAD_KEYS):
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{shown}: not a head checkpoint: expected keys {list(HEAD_KEYS)}, found {found}")
    heads = []
    for key in HEAD_KEYS:
        part = state[key]
        if not isinstance(part, dict) or not part or not all(isinstance(v, torch.Tensor) for v in part.values()):
            raise CheckpointError(f"{shown}: {key} must be a dict of tensors (a mapper's state)")
        broken = [k for k, v in part.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if broken:
            raise CheckpointError(f"{shown}: {key}.{broken[0]} holds NaN or inf; the head checkpoint is broken")
        kind = detect_head_kind(part)
        if kind is None:
            raise CheckpointError(
                f"{shown}: {key} has keys {sorted(part)[:6]}, which match no head type ({', '.join(list_head_types())})"
            )
        try:
            heads.append(head_type(kind).from_state(part, in_dim).eval())
        except ValueError as exc:
            raise CheckpointError(f"{shown}: {key} has {exc}; is this the head of another backbone?") from None
    if heads[0].kind != heads[1].kind:
        raise CheckpointError(f"{shown}: real_mapper is a {heads[0].kind} head but synth_mapper a {heads[1].kind} head")
    return Heads(heads[0], heads[1], shown)


def load_heads(path: Path | str, dim: int) -> Heads:
    """Load released-format heads (any registered type) for a ``dim``-dimensional backbone.

    Raises:
        CheckpointError: missing file, unsafe pickle, missing keys, or shapes that do not fit ``dim``.
    """
    path = Path(path)
    heads = heads_from_state(load_checkpoint(path, "head checkpoint"), dim, display_path(path))
    heads.source = str(path)
    return heads


def save_heads(heads: Heads, path: Path | str) -> None:
    """Write heads in the released format (loadable by this library and the original code)."""
    save_checkpoint(heads.state_dict(), path)
