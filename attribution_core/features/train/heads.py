"""Training the tuned heads contrastively from cached features (docs/method.md §3).

The AbC authors never released this part. Every synthesized image should score its own model's exemplars above
every other candidate (other models' exemplars and corpus images are negatives); a validation split drives early
stopping. Seeded; runs on CPU at the demo's scale, ``device="cuda"`` at AbC's scale.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ...attribute.metrics import average_precision, exemplar_ranks, recall_at
from ...core.config import option
from ...core.constants import DEVICE_HELP
from ...data.testcase import TestCase
from ...heads import Heads, create_heads, heads_from_state

log = logging.getLogger(__name__)


@dataclass
class FeatureSplit:
    """Raw backbone features of one split of an AbC-format test case."""

    queries: np.ndarray  # [nq, d] synthesized images
    query_model: np.ndarray  # [nq] index of each query's customised model
    exemplars: np.ndarray  # [ne, d]
    exemplar_model: np.ndarray  # [ne] index of each exemplar's model

    @classmethod
    def from_test_case(cls, tc: TestCase, feats: dict[str, np.ndarray]) -> FeatureSplit:
        q, qm, e, em = [], [], [], []
        for m, model in enumerate(tc.models):
            for path in model.exemplar:
                e.append(feats[path])
                em.append(m)
            for paths in model.synth.values():
                for path in paths:
                    q.append(feats[path])
                    qm.append(m)
        return cls(np.stack(q).astype(np.float32), np.array(qm), np.stack(e).astype(np.float32), np.array(em))

    def exemplars_of(self, m: int) -> np.ndarray:
        return self.exemplars[self.exemplar_model == m]


@dataclass(frozen=True)
class HeadTrainingConfig:
    """Options of ``attribute train-head`` (the CLI's flags are generated from these fields)."""

    head: str = option("linear", "head type: linear, mlp or channel (docs/method.md §3)")
    mlp_hidden: int = option(512, "mlp heads: hidden width", minimum=1)
    mlp_out: int = option(256, "mlp heads: output dimension (the attribution space)", minimum=1)
    mlp_layers: int = option(2, "mlp heads: number of Linear layers", minimum=1)
    mlp_dropout: float = option(0.0, "mlp heads: dropout after each hidden layer", minimum=0, maximum=0.99)
    temperature: float = option(
        0.1, "softmax temperature of the contrastive loss (on cosine similarities)", minimum=1e-06
    )
    lr: float = option(3e-4, "Adam learning rate", minimum=0)
    weight_decay: float = option(0.0, "Adam weight decay", minimum=0)
    identity_penalty: float = option(
        0.0, "weight of the distance from identity (linear: ‖W − I‖², channel: ‖w − 1‖²)", minimum=0
    )
    batch_size: int = option(32, "synthesized images per step", minimum=1)
    negatives: int = option(4096, "corpus images drawn as negatives per step", minimum=1)
    max_epochs: int = option(60, "maximum epochs", flag="--epochs", minimum=1)
    patience: int = option(8, "epochs without a better validation mAP before stopping", minimum=1)
    seed: int = option(0, "random seed (same seed, same heads)")
    device: str = option("cpu", f"where the training itself runs: {DEVICE_HELP}", flag="--device-train")

    def head_options(self) -> dict:
        if self.head != "mlp":
            return {}
        return {"hidden": self.mlp_hidden, "out": self.mlp_out, "layers": self.mlp_layers, "dropout": self.mlp_dropout}


@dataclass
class TrainingReport:
    """Validation metrics per epoch (epoch 0: the identity heads) and which epoch was kept."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0

    @property
    def best(self) -> dict:
        return self.history[self.best_epoch]


def contrastive_loss(xq: torch.Tensor, xc: torch.Tensor, positive: torch.Tensor, temperature: float) -> torch.Tensor:
    """Multi-positive InfoNCE: mean over each query's positives of -log softmax over all candidates.

    Args:
        xq: [B, d] unit-norm synth-head features; xc: [C, d] unit-norm real-head features of the candidates.
        positive: [B, C] bool, True where the candidate is one of the query's exemplars.
    """
    log_prob = torch.log_softmax(xq @ xc.T / temperature, dim=1)
    pos = positive.float()
    return (-(log_prob * pos).sum(dim=1) / pos.sum(dim=1).clamp(min=1)).mean()


@torch.inference_mode()
def split_metrics(heads: Heads, split: FeatureSplit, corpus: np.ndarray, k: int = 10) -> dict[str, float]:
    """Recall@k and mAP of ``heads`` on a split (AbC protocol: corpus ∪ own exemplars)."""
    xb = heads.real_head.map_numpy(corpus)
    xq = heads.synth_head(torch.from_numpy(split.queries)).numpy()
    ex = heads.real_head.map_numpy(split.exemplars)
    ex_scores = [ex[split.exemplar_model == m] @ q for q, m in zip(xq, split.query_model, strict=True)]
    ranks = exemplar_ranks(xq, xb, ex_scores)
    return {
        f"recall@{k}": float(np.mean([recall_at(r, k) for r in ranks])),
        "mAP": float(np.mean([average_precision(r) for r in ranks])),
    }


def train_heads(
    train: FeatureSplit,
    val: FeatureSplit,
    corpus: np.ndarray,
    config: HeadTrainingConfig = HeadTrainingConfig(),
    progress: bool = True,
) -> tuple[Heads, TrainingReport]:
    """Train ``real_head`` and ``synth_head`` (from identity where the head type has one); keep the epoch with the
    best validation mAP. Each epoch's validation metrics are logged (``logging``, INFO).

    Args:
        train, val: features of the training and validation splits (disjoint exemplars).
        corpus: [N, d] raw features of other training images (negatives), without the splits' exemplars.
    """
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    dev = torch.device(config.device)
    d = train.queries.shape[1]
    heads = create_heads(config.head, d, **config.head_options())
    heads.real_head.to(dev).train()
    heads.synth_head.to(dev).train()
    params = [*heads.real_head.parameters(), *heads.synth_head.parameters()]
    opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    q_all = torch.from_numpy(train.queries).to(dev)
    ex_all = torch.from_numpy(train.exemplars).to(dev)
    positive_all = torch.from_numpy(train.query_model[:, None] == train.exemplar_model[None, :]).to(dev)
    corpus_t = torch.from_numpy(np.array(corpus, dtype=np.float32))  # a writable copy (memmaps are read-only)
    n_neg = min(config.negatives, corpus.shape[0])

    report = TrainingReport()

    def evaluate(epoch: int, loss: float) -> float:
        heads.real_head.cpu().eval()
        heads.synth_head.cpu().eval()
        metrics = split_metrics(heads, val, corpus)
        heads.real_head.to(dev).train()
        heads.synth_head.to(dev).train()
        report.history.append({"epoch": epoch, "loss": loss, **{f"val_{k}": v for k, v in metrics.items()}})
        scores = f"val recall@10 {metrics['recall@10']:.4f}  val mAP {metrics['mAP']:.4f}"
        if epoch == 0:  # no loss yet: the identity heads, before any training step
            log.info("before training  %s", scores)
        else:
            log.info("epoch %3d  loss %.4f  %s", epoch, loss, scores)
        return metrics["mAP"]

    best_map = evaluate(0, float("nan"))
    best_state = copy.deepcopy(heads.state_dict())
    steps = math.ceil(len(q_all) / config.batch_size)
    bar = tqdm(range(1, config.max_epochs + 1), desc="train heads", unit="epoch", disable=not progress)
    for epoch in bar:
        order = torch.from_numpy(rng.permutation(len(q_all))).to(dev)
        total = 0.0
        for s in range(steps):
            idx = order[s * config.batch_size : (s + 1) * config.batch_size]
            neg = corpus_t[torch.from_numpy(rng.choice(corpus.shape[0], n_neg, replace=False))].to(dev)
            xc = heads.real_head(torch.cat([ex_all, neg]))
            xq = heads.synth_head(q_all[idx])
            positive = torch.cat([positive_all[idx], torch.zeros(len(idx), n_neg, dtype=torch.bool, device=dev)], 1)
            loss = contrastive_loss(xq, xc, positive, config.temperature)
            if config.identity_penalty:
                drift = heads.real_head.identity_drift() + heads.synth_head.identity_drift()
                loss = loss + config.identity_penalty * drift
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        val_map = evaluate(epoch, total / steps)
        bar.set_postfix(loss=f"{total / steps:.3f}", val_mAP=f"{val_map:.3f}")
        if val_map > best_map:
            best_map, report.best_epoch = val_map, epoch
            best_state = copy.deepcopy(heads.state_dict())
        elif epoch - report.best_epoch >= config.patience:
            break
    bar.close()
    best = heads_from_state(best_state, d, "trained heads")
    best.source = "trained"
    return best, report
