"""Temperature-calibrated soft influence (docs/method.md §3): similarities -> each training image's share.

For one query with scores ``s`` over the *whole* corpus::

    e_i = exp(inv_tau * (s_i - max s)),   t_i = max(e_i + b, 0),   p_i = t_i / sum_j t_j,   b = 0.001 * bias

With ``b < 0`` only scores above ``max s + ln(-b) / inv_tau`` carry mass, so the exact result needs only those
scores (a range search). With ``b >= 0`` every image carries mass and the tail must be summed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.checkpoints import load_checkpoint, save_checkpoint
from ..core.config import option
from ..core.errors import CheckpointError
from ..core.fileio import atomic_path
from ..core.paths import display_path

BIAS_GAIN = 0.001  # the released calibrators store bias / 0.001


@dataclass(frozen=True)
class Calibrator:
    """The two calibrator scalars, as stored in the released checkpoints."""

    inv_tau: float = 1.0  # inverse temperature
    bias: float = 0.0  # stored bias; the effective bias is b = 0.001 * bias

    def __post_init__(self) -> None:
        if not (self.inv_tau > 0 and math.isfinite(self.inv_tau)):
            raise ValueError(f"calibrator inv_tau must be a positive number, got {self.inv_tau}")
        if not (self.b > -1.0 and math.isfinite(self.b)):
            raise ValueError(f"calibrator effective bias must be > -1 (else nothing gets mass), got b={self.b}")

    @property
    def b(self) -> float:
        """The effective bias ``0.001 * bias``."""
        return self.bias * BIAS_GAIN

    @property
    def mass_window(self) -> float | None:
        """How far below the best score an image can be and still get mass (``-ln(-b)/inv_tau``); None if b >= 0."""
        if self.b >= 0:
            return None
        return -math.log(-self.b) / self.inv_tau

    def threshold(self, max_score: float) -> float:
        """Scores must be strictly above this to receive mass (``-inf`` when b >= 0)."""
        window = self.mass_window
        return -math.inf if window is None else max_score - window

    def describe(self) -> str:
        return f"inv temp {self.inv_tau:.4f}; bias {self.b:.4f}"


def load_calibrator(path: Path | str) -> Calibrator:
    """Load a released-format calibrator ``{"inv_tau": scalar, "bias": scalar}``."""
    path = Path(path)
    state = load_checkpoint(path, "calibrator checkpoint")
    shown = display_path(path)
    if not isinstance(state, dict) or "inv_tau" not in state or "bias" not in state:
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{shown}: not a calibrator: expected keys ['bias', 'inv_tau'], found {found}")
    try:
        inv_tau, bias = float(state["inv_tau"]), float(state["bias"])
    except (TypeError, ValueError, RuntimeError):
        raise CheckpointError(f"{shown}: calibrator 'inv_tau' and 'bias' must be scalars") from None
    try:
        return Calibrator(inv_tau, bias)
    except ValueError as exc:
        raise CheckpointError(f"{shown}: {exc}") from None


def save_calibrator(calibrator: Calibrator, path: Path | str) -> None:
    """Write the released format (scalar tensors): safetensors for a ``.safetensors`` path, else a tensor pickle."""
    state = {"inv_tau": torch.tensor(calibrator.inv_tau), "bias": torch.tensor(calibrator.bias)}
    if Path(path).suffix != ".safetensors":
        save_checkpoint(state, path)
        return
    from safetensors.torch import save_file

    with atomic_path(path, ".safetensors") as tmp:
        save_file(state, str(tmp))


def soft_influence(scores: np.ndarray, calibrator: Calibrator) -> np.ndarray:
    """Dense soft attribution over every score given: [N] -> [N], summing to 1. O(N); used for small sets."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.maximum(np.exp(calibrator.inv_tau * (s - s.max())) + calibrator.b, 0.0)
    return t / t.sum()


def influence_normaliser(mass_scores: np.ndarray, max_score: float, calibrator: Calibrator, n_total: int) -> float:
    """The exact denominator ``sum_j t_j`` over the whole corpus of ``n_total`` images.

    Args:
        mass_scores: every score that carries mass: for b < 0, all scores above ``calibrator.threshold(max)``
            (more may be given: they contribute 0); for b >= 0, all ``n_total`` scores.
        max_score: the corpus-wide best score.
        n_total: corpus size N.
    """
    s = np.asarray(mass_scores, dtype=np.float64)
    e = np.exp(calibrator.inv_tau * (s - max_score))
    if calibrator.b < 0:
        return float(np.maximum(e + calibrator.b, 0.0).sum())
    if s.size != n_total:
        raise ValueError(f"with bias b >= 0 every image carries mass: need all {n_total} scores, got {s.size}")
    return float(e.sum() + calibrator.b * n_total)


def influence_of(scores: np.ndarray, max_score: float, calibrator: Calibrator, normaliser: float) -> np.ndarray:
    """Influence p_i of the images with the given scores (e.g. the top-K), given the exact normaliser."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.maximum(np.exp(calibrator.inv_tau * (s - max_score)) + calibrator.b, 0.0)
    return t / normaliser


def calibration_loss(
    selected_scores: torch.Tensor, count_gt: torch.Tensor, inv_tau: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """The calibrator's training loss (docs/method.md §3), averaged over queries.

    Args:
        selected_scores: [B, L] scores per query; the first ``count_gt[i]`` entries of row i are its exemplars.
        count_gt: [B] number of ground-truth exemplars per query.
        inv_tau, bias: scalar tensors (the parameters being fitted; ``bias`` is the stored value).
    """
    s = selected_scores - selected_scores.max(dim=1, keepdim=True).values
    t = torch.nn.functional.softplus(torch.exp(inv_tau * s) + bias * BIAS_GAIN, beta=100)
    denominator = torch.log(t.sum(dim=1))
    mask = torch.arange(s.shape[1], device=s.device)[None, :] < count_gt[:, None]
    numerator = torch.where(mask, torch.log(t), torch.zeros_like(t)).sum(dim=1) / count_gt
    return (denominator - numerator).mean()


@dataclass(frozen=True)
class CalibratorTrainingConfig:
    """Options of ``attribute train-calibrator`` (the CLI's flags are generated from these fields)."""

    top: int = option(1000, "highest corpus scores per query in the loss", minimum=1)
    steps: int = option(2000, "Adam steps", minimum=1)
    lr: float = option(0.05, "Adam learning rate", minimum=0)


def fit_calibrator(
    selected: np.ndarray,
    count_gt: np.ndarray,
    steps: int = 2000,
    lr: float = 0.05,
    init: Calibrator = Calibrator(),
    progress: bool = True,
) -> Calibrator:
    """Fit ``inv_tau`` (through its logarithm, so it stays positive) and ``bias`` by Adam on the calibration loss.

    Args:
        selected: [B, L] scores per query, its ``count_gt[i]`` exemplars first.
    """
    s = torch.from_numpy(np.asarray(selected, dtype=np.float32)).double()
    c = torch.from_numpy(np.asarray(count_gt)).double()
    log_inv_tau = torch.tensor(math.log(init.inv_tau), dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(float(init.bias), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([log_inv_tau, bias], lr=lr)
    for _ in tqdm(range(steps), desc="fit calibrator", unit="step", disable=not progress):
        loss = calibration_loss(s, c, log_inv_tau.exp(), bias)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            bias.clamp_(max=1e6, min=-999.0)  # b = 0.001 * bias must stay > -1
    return Calibrator(log_inv_tau.exp().item(), bias.item())
