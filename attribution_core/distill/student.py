"""The student of distilled attribution (docs/method.md §9): one small MLP, shared by the query and the training
side, over frozen image features concatenated with text features (the query's prompt, a training image's
caption), scored by cosine and trained to reproduce unlearning's *ranking* of each query's candidates.

The objective is FastGDA's pointwise learning-to-rank: for a query's K scored candidates in the teacher's order,
the target of the candidate at 0-based rank ``j`` is ``1 − j / K``; with probability ``negatives`` a pair's
candidate is replaced by a random training image outside the candidates, with target 0 (least influential); the
student's probability is ``sigmoid(scale · cos + bias)`` (scale and bias learnt), and the loss binary
cross-entropy. Regressing the teacher's raw scores fails (FastGDA reports mAP 0.009): only the order is learnt
here; calibrated shares come from a separately fitted calibrator.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..core.config import option
from ..core.progress import tracked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudentConfig:
    """Architecture and training of the student (FastGDA's values, scaled to the demo where noted)."""

    hidden: int = option(768, "hidden width of the MLP", minimum=1, maximum=4096)
    embedding: int = option(768, "embedding width (the attribution space)", minimum=1, maximum=4096)
    layers: int = option(3, "linear layers of the MLP", minimum=1, maximum=16)
    dropout: float = option(0.1, "dropout after each hidden layer", minimum=0, maximum=0.99)
    negatives: float = option(
        0.1, "share of pairs whose candidate is a random non-candidate (target 0)", minimum=0, maximum=0.99
    )
    lr: float = option(1e-3, "AdamW learning rate", minimum=0)
    weight_decay: float = option(0.01, "AdamW weight decay", minimum=0)
    epochs: int = option(10, "passes over the labelled pairs", minimum=1)
    batch_size: int = option(4096, "pairs per step", minimum=1)
    seed: int = option(0, "seed of initialisation, pair order and negatives")


class Student(nn.Module):
    """``[image features ⊕ text features] → MLP → unit vector``, the same MLP for queries and training images."""

    def __init__(self, in_dim: int, config: StudentConfig):
        super().__init__()
        widths = [in_dim] + [config.hidden] * (config.layers - 1) + [config.embedding]
        blocks: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            blocks.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                blocks += [nn.ReLU(), nn.Dropout(config.dropout)]
        self.mlp = nn.Sequential(*blocks)
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.bias = nn.Parameter(torch.tensor(-5.0))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[B, in_dim] → [B, embedding], L2-normalised."""
        return nn.functional.normalize(self.mlp(features), dim=-1)


def joint_features(image: np.ndarray, text: np.ndarray) -> np.ndarray:
    """Image and text features, each L2-normalised, side by side: [n, d_image + d_text] float32."""

    def unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    return np.concatenate([unit(image), unit(text)], axis=1)


@dataclass(frozen=True)
class RankingLabel:
    """One labelled query: its joint features and its candidates' training rows, in the teacher's order."""

    features: np.ndarray  # [in_dim]
    rows: np.ndarray  # [K] training rows, most influential first


def _pairs(labels: Sequence[RankingLabel]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (query, candidate, target) pair: target ``1 − j / K`` for the candidate at 0-based rank ``j``."""
    q, r, y = [], [], []
    for i, label in enumerate(labels):
        k = len(label.rows)
        q.append(np.full(k, i))
        r.append(label.rows)
        y.append(1.0 - np.arange(k) / k)
    return np.concatenate(q), np.concatenate(r), np.concatenate(y).astype(np.float32)


def train_student(
    labels: Sequence[RankingLabel],
    training_features: np.ndarray,
    config: StudentConfig = StudentConfig(),
    device: str = "cpu",
    progress: bool = True,
) -> Student:
    """A student trained on ``labels`` over the training set's joint features [N, in_dim]."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    student = Student(training_features.shape[1], config).to(device)
    opt = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    queries = torch.from_numpy(np.stack([label.features for label in labels])).to(device)
    train = torch.from_numpy(np.asarray(training_features, dtype=np.float32)).to(device)
    candidates = [set(label.rows.tolist()) for label in labels]
    q, r, y = _pairs(labels)
    student.train()
    for _ in tracked(range(config.epochs), "train student", progress=progress, unit="epoch"):
        order = rng.permutation(len(q))
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            bq, br, by = q[idx], r[idx].copy(), y[idx].copy()
            swap = rng.random(len(idx)) < config.negatives
            for s in np.flatnonzero(swap):  # a random training image outside this query's candidates
                row = int(rng.integers(len(train)))
                while row in candidates[bq[s]] and len(candidates[bq[s]]) < len(train):
                    row = int(rng.integers(len(train)))
                br[s], by[s] = row, 0.0
            cos = (student(queries[bq]) * student(train[br])).sum(-1)
            logits = student.scale * cos + student.bias
            loss = nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(by).to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
    student.eval()
    return student


@torch.no_grad()
def embed(student: Student, features: np.ndarray, batch: int = 8192) -> np.ndarray:
    """Joint features [n, in_dim] → the student's unit embeddings [n, embedding] (float32)."""
    device = next(student.parameters()).device
    out = [
        student(torch.from_numpy(np.asarray(features[i : i + batch], dtype=np.float32)).to(device)).cpu().numpy()
        for i in range(0, len(features), batch)
    ]
    return np.concatenate(out).astype(np.float32)
