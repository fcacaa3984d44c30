"""The ``mlp`` head (the authors' ``MLPProbe``): per layer Linear without bias -> BatchNorm1d -> ReLU -> Dropout;
the last Linear is followed by a BatchNorm1d without affine parameters (SimCLR's projection head)."""

from __future__ import annotations

import re
from typing import Any

import torch

from .registry import Head, register_head

_LINEAR_KEY = re.compile(r"^(\d+)\.weight$")
_PER_LAYER = 4  # Linear, BatchNorm1d, ReLU, Dropout: Sequential indices of layer l start at 4 * l


@register_head
class MLPHead(Head):
    """Released mapper state: ``nn.Sequential`` keys ``0.weight``, ``1.weight``, ``1.running_mean``, …"""

    kind = "mlp"

    def __init__(self, dim: int, hidden: int = 512, out: int = 256, layers: int = 2, dropout: float = 0.0):
        super().__init__()
        if layers < 1:
            raise ValueError("an mlp head needs at least one layer")
        modules: list[torch.nn.Module] = []
        for i in range(layers):
            d_in = dim if i == 0 else hidden
            d_out = out if i == layers - 1 else hidden
            modules.append(torch.nn.Linear(d_in, d_out, bias=False))
            if i < layers - 1:
                modules += [torch.nn.BatchNorm1d(d_out), torch.nn.ReLU(inplace=True), torch.nn.Dropout(p=dropout)]
            else:
                modules.append(torch.nn.BatchNorm1d(d_out, affine=False))
        self.mapper = torch.nn.Sequential(*modules)
        self._in, self._out = dim, out

    @property
    def in_dim(self) -> int:
        return self._in

    @property
    def out_dim(self) -> int:
        return self._out

    @classmethod
    def matches(cls, state: dict[str, Any]) -> bool:
        return "0.weight" in state and any(k.endswith("running_mean") for k in state)

    @classmethod
    def from_state(cls, state: dict[str, Any], in_dim: int) -> MLPHead:
        linear = sorted(int(m.group(1)) for k in state if (m := _LINEAR_KEY.match(k)) and state[k].ndim == 2)
        layers = len(linear)
        if linear != [_PER_LAYER * i for i in range(layers)]:
            raise ValueError(f"Linear layers at positions {linear}, not 0, 4, 8, … (Linear, BN, ReLU, Dropout)")
        first, last = state["0.weight"], state[f"{_PER_LAYER * (layers - 1)}.weight"]
        if first.shape[1] != in_dim:
            raise ValueError(f"a first layer for {first.shape[1]}-d input, but the backbone's features are {in_dim}-d")
        hidden = first.shape[0] if layers > 1 else 512
        head = cls(in_dim, hidden=hidden, out=int(last.shape[0]), layers=layers)
        try:
            head.mapper.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        except RuntimeError as exc:
            raise ValueError(str(exc).strip().splitlines()[0]) from None
        return head
