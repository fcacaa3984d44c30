"""The ``linear`` head: ``Linear(d, d)`` initialised to the identity with zero bias (the released AbC heads)."""

from __future__ import annotations

from typing import Any

import torch

from .registry import Head, register_head


@register_head
class LinearHead(Head):
    """Released mapper state: ``{"weight": [d, d], "bias": [d]}``."""

    kind = "linear"

    def __init__(self, dim: int):
        super().__init__()
        self.mapper = torch.nn.Linear(dim, dim)
        with torch.no_grad():
            self.mapper.weight.copy_(torch.eye(dim))
            self.mapper.bias.zero_()

    @property
    def in_dim(self) -> int:
        return self.mapper.in_features

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """As :class:`Head`; outside autograd an identity mapper (the untuned space) only normalises: the same
        numbers (x·I + 0 is exact) without a d×d product per row, which made rescoring 1M × 1280 rows through the
        identity head take ~48 s instead of ~1 s."""
        if not torch.is_grad_enabled() and self.is_identity():
            return torch.nn.functional.normalize(feats.float(), dim=-1)
        return super().forward(feats)

    def is_identity(self) -> bool:
        """Whether the mapper is exactly the identity with zero bias (checked once per change of its weights)."""
        w, b = self.mapper.weight, self.mapper.bias
        key = (w._version, b._version, w.data_ptr(), b.data_ptr())
        if getattr(self, "_identity_key", None) != key:
            eye = torch.eye(self.in_dim, dtype=w.dtype, device=w.device)
            self._identity = bool(torch.equal(w.detach(), eye) and not torch.count_nonzero(b.detach()))
            self._identity_key = key
        return self._identity

    def identity_drift(self) -> torch.Tensor:
        eye = torch.eye(self.in_dim, device=self.mapper.weight.device)
        return ((self.mapper.weight - eye) ** 2).sum()

    @classmethod
    def matches(cls, state: dict[str, Any]) -> bool:
        return set(state) == {"weight", "bias"} and getattr(state["weight"], "ndim", 0) == 2

    @classmethod
    def from_state(cls, state: dict[str, Any], in_dim: int) -> LinearHead:
        w, b = state["weight"], state["bias"]
        if tuple(w.shape) != (in_dim, in_dim) or tuple(b.shape) != (in_dim,):
            raise ValueError(
                f"weight {tuple(w.shape)} and bias {tuple(b.shape)}, but the backbone's features are {in_dim}-d "
                f"(expected [{in_dim}, {in_dim}] and [{in_dim}])"
            )
        head = cls(in_dim)
        head.mapper.load_state_dict({"weight": w.float(), "bias": b.float()})
        return head
