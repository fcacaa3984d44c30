"""The ``linear`` head: ``Linear(d, d)`` initialised to the identity with zero bias (the released AbC heads)."""

from __future__ import annotations

from typing import Any

import torch

from ._base import Head, register_head


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
