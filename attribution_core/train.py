"""Training the tuned heads (contrastively) and the calibrator (REFERENCE §3), from cached features.

The AbC authors never released this part. Heads: every synthesized image should score its own model's exemplars
above every other candidate (other models' exemplars and corpus images are negatives); a validation split drives
early stopping. Calibrator: ``inv_tau`` and ``bias`` fitted with the paper's loss on a validation split.
Everything is seeded and runs on CPU at the demo's scale; pass ``device="cuda"`` at AbC's scale.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from .calibration import Calibrator, calibration_loss
from .evaluate import TestCase, average_precision, exemplar_ranks, recall_at
from .heads import Heads, identity_heads


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
    """Options of ``attribute train-head``."""

    temperature: float = 0.1  # softmax temperature of the contrastive loss (on cosine similarities)
    lr: float = 3e-4  # Adam learning rate
    weight_decay: float = 0.0  # Adam weight decay
    identity_penalty: float = 0.0  # λ·(‖W_real − I‖² + ‖W_synth − I‖²): stay near the pretrained space
    batch_size: int = 32  # synthesized images per step
    negatives: int = 4096  # corpus images drawn as negatives per step
    max_epochs: int = 60
    patience: int = 8  # epochs without a better validation mAP before stopping
    seed: int = 0
    device: str = "cpu"


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
    log: Callable[[str], None] | None = None,
) -> tuple[Heads, TrainingReport]:
    """Train ``real_head`` and ``synth_head`` from identity; keep the epoch with the best validation mAP.

    Args:
        train, val: features of the training and validation splits (disjoint exemplars).
        corpus: [N, d] raw features of other training images (negatives), without the splits' exemplars.
    """
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    dev = torch.device(config.device)
    d = train.queries.shape[1]
    heads = identity_heads(d)
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
        if log:
            log(
                f"epoch {epoch:3d}  loss {loss:.4f}  val recall@10 {metrics['recall@10']:.4f}  "
                f"val mAP {metrics['mAP']:.4f}"
            )
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
                eye = torch.eye(d, device=dev)
                drift = sum(((h.mapper.weight - eye) ** 2).sum() for h in (heads.real_head, heads.synth_head))
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
    best = identity_heads(d)
    best.real_head.mapper.load_state_dict({k: v.cpu() for k, v in best_state["real_mapper"].items()})
    best.synth_head.mapper.load_state_dict({k: v.cpu() for k, v in best_state["synth_mapper"].items()})
    return Heads(best.real_head.eval(), best.synth_head.eval(), "trained"), report


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
