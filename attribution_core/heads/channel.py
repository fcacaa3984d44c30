"""The ``channel`` head: a learned scale per feature channel (the authors' ``ChannelUpdate``)."""

from __future__ import annotations

from typing import Any

import torch

from .registry import Head, register_head


class ChannelScale(torch.nn.Module):
    """``x * weights`` with ``weights`` [1, d], initialised to ones; state key ``weights`` as released."""

    def __init__(self, dim: int):
        super().__init__()
        self.weights = torch.nn.Parameter(torch.ones(1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights


@register_head
class ChannelHead(Head):
    """Released mapper state: ``{"weights": [1, d]}``."""

    kind = "channel"

    def __init__(self, dim: int):
        super().__init__()
        self.mapper = ChannelScale(dim)

    @property
    def in_dim(self) -> int:
        return self.mapper.weights.shape[1]

    def identity_drift(self) -> torch.Tensor:
        return ((self.mapper.weights - 1) ** 2).sum()

    @classmethod
    def matches(cls, state: dict[str, Any]) -> bool:
        return set(state) == {"weights"}

    @classmethod
    def from_state(cls, state: dict[str, Any], in_dim: int) -> ChannelHead:
        w = state["weights"]
        if tuple(w.shape) != (1, in_dim):
            raise ValueError(
                f"weights {tuple(w.shape)}, but the backbone's features are {in_dim}-d (expected [1, {in_dim}])"
            )
        head = cls(in_dim)
        head.mapper.load_state_dict({"weights": w.float()})
        return head
