"""The AbC benchmark protocol (REFERENCE §2): exemplar ranks -> Recall@K and AP, per prompt type.

For each synthesized image q of customised model m the candidates are the corpus ∪ the exemplars of m, ranked
by cosine(synth_head(f(q)), real_head(f(x))). The rank of an exemplar is 1 + the number of candidates scoring
above it, so ranks are *counted* (one batched matrix product, then comparisons), never found by sorting the
corpus. An exemplar that ties exactly with a candidate is placed ahead of it (the original's argsort leaves
such ties in arbitrary order; with float scores they occur only for duplicate images).
"""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import AttributionError
from .paths import display_path

if TYPE_CHECKING:
    from .backbones import Backbone
    from .calibration import Calibrator
    from .spaces import SpaceSpec
    from .store import FeatureStore

DEFAULT_KS = (5, 10, 100)


@dataclass(frozen=True)
class CustomModel:
    """One entry of a test case: a customised model, its exemplars and its synthesized images per prompt type."""

    class_id: str
    exemplar: tuple[str, ...]
    synth: dict[str, tuple[str, ...]]
    category: str | None = None


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # not a pytest test class

    name: str  # file stem, e.g. test_bamfg
    path: Path
    models: tuple[CustomModel, ...]

    @property
    def prompt_types(self) -> list[str]:
        seen: dict[str, None] = {}
        for m in self.models:
            seen.update(dict.fromkeys(m.synth))
        return list(seen)

    def image_paths(self) -> list[str]:
        """Every exemplar and synthesized image named, each once, in file order."""
        seen: dict[str, None] = {}
        for m in self.models:
            seen.update(dict.fromkeys(m.exemplar))
            for paths in m.synth.values():
                seen.update(dict.fromkeys(paths))
        return list(seen)


def read_test_case(path: Path | str) -> TestCase:
    """Read an AbC test-case JSON: ``[{"exemplar": [...], "synth": {type: [...]}, "class_id", "category"}]``."""
    path = Path(path)
    shown = display_path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise AttributionError(f"{shown}: test-case file not found") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise AttributionError(f"{shown}: not a JSON file ({exc})") from None
    if not isinstance(raw, list) or not raw:
        raise AttributionError(f"{shown}: an AbC test case is a non-empty JSON list of customised models")
    models = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("exemplar"), list) or not entry["exemplar"]:
            raise AttributionError(f"{shown}: entry {i} has no 'exemplar' list")
        if not isinstance(entry.get("synth"), dict) or not all(isinstance(v, list) for v in entry["synth"].values()):
            raise AttributionError(f"{shown}: entry {i} has no 'synth' mapping of prompt type -> image list")
        models.append(
            CustomModel(
                class_id=str(entry.get("class_id", i)),
                exemplar=tuple(entry["exemplar"]),
                synth={k: tuple(v) for k, v in entry["synth"].items()},
                category=entry.get("category"),
            )
        )
    return TestCase(path.stem, path, tuple(models))


def describe_test_case(tc: TestCase) -> dict:
    """The structure of a test case: models, prompt types, counts."""
    ex = [len(m.exemplar) for m in tc.models]
    return {
        "test_case": tc.name,
        "models": len(tc.models),
        "prompt_types": {t: sum(len(m.synth.get(t, ())) for m in tc.models) for t in tc.prompt_types},
        "synth_per_model": sorted({len(v) for m in tc.models for v in m.synth.values()}),
        "exemplars": {"total": sum(ex), "min": min(ex), "median": statistics.median(ex), "max": max(ex)},
        "images": len(tc.image_paths()),
    }


def exemplar_ranks(
    xq: np.ndarray,
    xb: np.ndarray,
    ex_scores: Sequence[np.ndarray],
    batch_size: int = 256,
    chunk: int = 131072,
    progress: bool = False,
) -> list[np.ndarray]:
    """1-based ranks of each query's exemplars among corpus ∪ its exemplars, sorted ascending.

    Args:
        xq: [nq, d] unit-norm query features (synth head).
        xb: [N, d] unit-norm corpus features (real head); may be a memory map.
        ex_scores: nq arrays; the i-th holds the scores [e_i] of query i's exemplars.
    """
    nq = xq.shape[0]
    e_max = max((len(s) for s in ex_scores), default=0)
    padded = np.full((nq, e_max), np.inf, dtype=np.float32)  # +inf pads are never exceeded: count 0
    for i, s in enumerate(ex_scores):
        padded[i, : len(s)] = s
    counts = np.zeros((nq, e_max), dtype=np.int64)
    q_all = torch.from_numpy(np.array(xq, dtype=np.float32))
    starts = range(0, xb.shape[0], chunk)
    for c0 in tqdm(starts, desc="rank", unit="chunk", disable=not progress or len(starts) < 2):
        block = torch.from_numpy(np.array(xb[c0 : c0 + chunk], dtype=np.float32))
        for b0 in range(0, nq, batch_size):
            scores = q_all[b0 : b0 + batch_size] @ block.T  # [B, C]
            thresholds = torch.from_numpy(padded[b0 : b0 + batch_size])
            counts[b0 : b0 + batch_size] += _count_above(scores, thresholds).numpy()
    ranks = []
    for i, s in enumerate(ex_scores):
        own = (s[None, :] > s[:, None]).sum(axis=1)  # other exemplars scoring above each one
        ranks.append(np.sort(1 + counts[i, : len(s)] + own))
    return ranks


def _count_above(scores: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """[B, C] scores, [B, E] thresholds -> [B, E] counts of scores strictly above each threshold.

    One pass finds the scores above each row's lowest threshold (usually few: only candidates that outrank
    some exemplar); only those are compared with every threshold.
    """
    lowest = thresholds.min(dim=1, keepdim=True).values
    rows, cols = torch.nonzero(scores > lowest, as_tuple=True)
    if rows.numel() <= scores.numel() // 16:
        above = (scores[rows, cols][:, None] > thresholds[rows]).long()  # [M, E]
        return torch.zeros(thresholds.shape, dtype=torch.long).index_add_(0, rows, above)
    return torch.stack([(scores > thresholds[:, j : j + 1]).sum(dim=1) for j in range(thresholds.shape[1])], dim=1)


def exemplar_influence(
    xq: np.ndarray,
    xb: np.ndarray,
    ex_scores: Sequence[np.ndarray],
    calibrator,
    batch_size: int = 256,
    chunk: int = 131072,
) -> np.ndarray:
    """Calibrated influence mass each query puts on its own exemplars, over corpus ∪ its exemplars, exactly.

    Two batched passes over the corpus: the best score per query, then the normaliser Σ_j t_j.

    Returns:
        [nq] masses in [0, 1].
    """
    nq = xq.shape[0]
    q_all = torch.from_numpy(np.array(xq, dtype=np.float32))
    best = np.array([float(s.max()) for s in ex_scores], dtype=np.float64)
    for c0 in range(0, xb.shape[0], chunk):
        block = torch.from_numpy(np.array(xb[c0 : c0 + chunk], dtype=np.float32))
        for b0 in range(0, nq, batch_size):
            m = (q_all[b0 : b0 + batch_size] @ block.T).max(dim=1).values.double().numpy()
            best[b0 : b0 + batch_size] = np.maximum(best[b0 : b0 + batch_size], m)
    z = np.zeros(nq, dtype=np.float64)
    mx = torch.from_numpy(best)[:, None]
    for c0 in range(0, xb.shape[0], chunk):
        block = torch.from_numpy(np.array(xb[c0 : c0 + chunk], dtype=np.float32))
        for b0 in range(0, nq, batch_size):
            s = (q_all[b0 : b0 + batch_size] @ block.T).double()
            t = torch.clamp(torch.exp(calibrator.inv_tau * (s - mx[b0 : b0 + batch_size])) + calibrator.b, min=0)
            z[b0 : b0 + batch_size] += t.sum(dim=1).numpy()
    mass = np.empty(nq, dtype=np.float64)
    for i, s in enumerate(ex_scores):
        t = np.maximum(np.exp(calibrator.inv_tau * (s.astype(np.float64) - best[i])) + calibrator.b, 0.0)
        mass[i] = t.sum() / (z[i] + t.sum())
    return mass


def recall_at(ranks: np.ndarray, k: int) -> float:
    """|exemplars in the top k| / |exemplars|."""
    return float(np.count_nonzero(ranks <= k) / len(ranks))


def average_precision(ranks: np.ndarray) -> float:
    """AP = (1/|E|) Σ_j j / r_j over the sorted 1-based exemplar ranks r_1 < r_2 < …"""
    r = np.sort(np.asarray(ranks, dtype=np.float64))
    return float(np.mean(np.arange(1, len(r) + 1) / r))


@dataclass
class SpaceResult:
    """Metrics of one feature space on one test case."""

    space: str
    metrics: dict[str, float]  # "<type>-recall@K" and "<type>-mAP"
    ranks: list[dict] = field(default_factory=list)  # per synthesized image: model, type, path, ranks


def evaluate_features(
    tc: TestCase,
    corpus: np.ndarray,
    encode_real: Callable[[np.ndarray], np.ndarray],
    encode_synth: Callable[[np.ndarray], np.ndarray],
    image_feats: dict[str, np.ndarray],
    space: str,
    ks: Sequence[int] = DEFAULT_KS,
    progress: bool = False,
    calibrator: Calibrator | None = None,
) -> SpaceResult:
    """Run the protocol for one space (with a calibrator: also ``<type>-influence``, the mean calibrated
    influence the synthesized images put on their own exemplars).

    Args:
        corpus: [N, d] unit-norm corpus features, already through the real head.
        encode_real / encode_synth: raw [n, d] -> unit-norm head-mapped [n, d].
        image_feats: raw feature [d] of every exemplar and synthesized image, by JSON path.
    """
    queries, ex_scores, meta = [], [], []
    for m in tc.models:
        ex = encode_real(np.stack([image_feats[p] for p in m.exemplar]))
        for ptype, paths in m.synth.items():
            if not paths:
                continue
            q = encode_synth(np.stack([image_feats[p] for p in paths]))
            queries.append(q)
            for row, path in zip(q, paths, strict=True):
                ex_scores.append(ex @ row)
                meta.append((m.class_id, ptype, path))
    xq = np.concatenate(queries) if queries else np.zeros((0, corpus.shape[1]), np.float32)
    ranks = exemplar_ranks(xq, corpus, ex_scores, progress=progress)
    mass = exemplar_influence(xq, corpus, ex_scores, calibrator) if calibrator is not None else None
    metrics: dict[str, float] = {}
    for ptype in tc.prompt_types:
        sel = [r for r, (_, t, _) in zip(ranks, meta, strict=True) if t == ptype]
        if not sel:
            continue
        for k in ks:
            metrics[f"{ptype}-recall@{k}"] = float(np.mean([recall_at(r, k) for r in sel]))
        metrics[f"{ptype}-mAP"] = float(np.mean([average_precision(r) for r in sel]))
        if mass is not None:
            metrics[f"{ptype}-influence"] = float(
                np.mean([m for m, (_, t, _) in zip(mass, meta, strict=True) if t == ptype])
            )
    dump = [
        {"test_case": tc.name, "space": space, "model": cid, "type": t, "synth": p, "ranks": r.tolist()}
        for r, (cid, t, p) in zip(ranks, meta, strict=True)
    ]
    return SpaceResult(space, metrics, dump)


def format_table(tc: TestCase, results: Sequence[SpaceResult]) -> str:
    """A Markdown table: one row per space, columns ``<type>-recall@K`` and ``<type>-mAP``."""
    cols = list(dict.fromkeys(c for r in results for c in r.metrics))
    lines = [f"| space | {' | '.join(cols)} |", "|---|" + "---:|" * len(cols)]
    for r in results:
        lines.append(f"| {r.space} | " + " | ".join(f"{r.metrics.get(c, float('nan')):.4f}" for c in cols) + " |")
    return "\n".join(lines)


def write_csv(path: Path | str, rows: Sequence[tuple[TestCase, SpaceResult]]) -> None:
    """One CSV row per (test case, space)."""
    cols = list(dict.fromkeys(c for _, r in rows for c in r.metrics))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["test_case", "space", *cols])
        for tc, r in rows:
            w.writerow([tc.name, r.space, *(f"{r.metrics[c]:.6f}" if c in r.metrics else "" for c in cols)])


def test_case_features(
    tc: TestCase, backbone: Backbone, root: Path, cache_root: Path | None = None, progress: bool = True
) -> dict[str, np.ndarray]:
    """Raw backbone features of every image the test case names, extracted once and cached as a store
    (``feats/eval/<backbone>/<test case>``, resumable like any extraction).

    Raises:
        AttributionError: images are missing (all reported at once, with their count) or unreadable.
    """
    from .extract import extract_features
    from .paths import project_root
    from .store import FeatureStore

    names = tc.image_paths()
    missing = [p for p in names if not (root / p).is_file()]
    if missing:
        shown = ", ".join(missing[:3]) + (", …" if len(missing) > 3 else "")
        raise AttributionError(
            f"{display_path(tc.path)}: {len(missing)} of {len(names)} images are missing under "
            f"{display_path(root)} (e.g. {shown}); get them with `bash dataset/download_dataset.sh exemplar` and "
            "`bash dataset/download_dataset.sh testset`, or pass --root"
        )
    out = (cache_root or project_root() / "feats" / "eval") / backbone.name / tc.name
    report = extract_features([root], out, backbone, root=root, files=[root / p for p in names], progress=progress)
    if report.skipped:
        bad = "; ".join(f"{s.path}: {s.reason}" for s in report.skipped[:3])
        raise AttributionError(f"{display_path(tc.path)}: {len(report.skipped)} images cannot be read ({bad})")
    store = FeatureStore.open(out)
    row = {p: i for i, p in enumerate(store.paths)}
    return {p: np.asarray(store.feats[row[Path(p).as_posix()]]) for p in names}


def corpus_rows_without(store: FeatureStore, root: Path, test_cases: Sequence[TestCase]) -> np.ndarray:
    """Boolean mask [N] of the store's rows that are not exemplars of any of the test cases (matched by file)."""
    exemplars = {str((root / p).resolve()) for tc in test_cases for m in tc.models for p in m.exemplar}
    image_root = Path(store.meta.image_root) if store.meta.image_root else None
    files = [str((image_root / p).resolve()) if image_root else p for p in store.paths]
    return np.array([f not in exemplars for f in files], dtype=bool)


def run_evaluation(
    test_cases: Sequence[TestCase],
    spaces: Sequence[SpaceSpec],
    root: Path,
    ks: Sequence[int] = DEFAULT_KS,
    no_head: bool = False,
    device: str = "auto",
    progress: bool = True,
    influence: bool = False,
) -> list[tuple[TestCase, SpaceResult]]:
    """Evaluate every space (a :class:`~attribution_core.spaces.SpaceSpec`) on every test case; with
    ``influence``, also the mean calibrated influence on the true exemplars (the space's calibrator)."""
    from .backbones import create_backbone
    from .calibration import Calibrator, load_calibrator
    from .heads import identity_heads, load_heads
    from .store import FeatureStore, resolve_store

    out: list[tuple[TestCase, SpaceResult]] = []
    for spec in spaces:
        backbone = create_backbone(spec.backbone, spec.backbone_weights, device)
        use_head = spec.mapper is not None and not no_head
        heads = load_heads(spec.mapper, backbone.dim) if use_head else identity_heads(backbone.dim)
        name = spec.name if use_head or spec.mapper is None else f"{spec.name} (no head)"
        cal = None
        if influence:
            cal = spec.calibrator if isinstance(spec.calibrator, Calibrator) else load_calibrator(spec.calibrator)
        corpus_path = spec.corpus_store or spec.store  # AbC: exemplars are never part of the distractor corpus
        image_root = spec.image_root if corpus_path.suffix == ".pth" else None
        store = FeatureStore.open(resolve_store(corpus_path, spec.backbone, image_root))
        store.check_backbone(backbone.name, backbone.dim)
        corpus = heads.real_head.map_numpy(store.feats)

        def real(x: np.ndarray, h=heads) -> np.ndarray:
            return h.real_head.map_numpy(x)

        def synth(x: np.ndarray, h=heads) -> np.ndarray:
            with torch.inference_mode():
                return h.synth_head(torch.from_numpy(np.array(x, dtype=np.float32))).numpy()

        for tc in test_cases:
            feats = test_case_features(tc, backbone, root, progress=progress)
            keep = corpus_rows_without(store, root, [tc])
            xb = corpus if keep.all() else corpus[keep]  # exemplars are appended per query, never counted twice
            out.append((tc, evaluate_features(tc, xb, real, synth, feats, name, ks, progress, cal)))
    return out
