"""Fitting the calibrator (``inv_tau``, ``bias``) with the paper's loss on a validation split (docs/method.md §3)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..calibration import Calibrator, calibration_loss
from ..config import option
from ..heads import Heads
from .heads import FeatureSplit


@dataclass(frozen=True)
class CalibratorTrainingConfig:
    """Options of ``attribute train-calibrator`` (the CLI's flags are generated from these fields)."""

    top: int = option(1000, "highest corpus scores per query in the loss")
    steps: int = option(2000, "Adam steps")
    lr: float = option(0.05, "Adam learning rate")


@torch.inference_mode()
def calibration_scores(heads: Heads, split: FeatureSplit, corpus: np.ndarray, top: int = 1000):
    """Per query: its exemplars' scores first, then the highest corpus scores (the loss's "selected scores").

    Returns:
        (selected [nq, L] float32, count_gt [nq]): every row has the same length L = max exemplars + top.
    """
    xb = heads.real_head.map_numpy(corpus)
    xq = heads.synth_head(torch.from_numpy(split.queries)).numpy()
    ex = heads.real_head.map_numpy(split.exemplars)
    counts = np.array([int((split.exemplar_model == m).sum()) for m in split.query_model])
    width = int(counts.max()) + min(top, xb.shape[0] - int(counts.max()))
    rows = []
    for q, m, c in zip(xq, split.query_model, counts, strict=True):
        s = xb @ q
        n_corpus = width - c
        best = np.argpartition(-s, n_corpus - 1)[:n_corpus] if n_corpus < s.shape[0] else np.arange(s.shape[0])
        rows.append(np.concatenate([ex[split.exemplar_model == m] @ q, np.sort(s[best])[::-1]]))
    return np.stack(rows).astype(np.float32), counts


def fit_calibrator(
    selected: np.ndarray,
    count_gt: np.ndarray,
    steps: int = 2000,
    lr: float = 0.05,
    init: Calibrator = Calibrator(),  # noqa: B008
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
