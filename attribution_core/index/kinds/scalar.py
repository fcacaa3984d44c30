"""Exact search over compressed codes: ``sq8`` (8-bit) and ``fp16`` (float16) scalar quantisers whose candidates are
rescored exactly from the store (the scan and its error bound: index/compressed.py; docs/method.md §3)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from ...core.errors import AttributionError
from ...core.paths import display_path
from ...core.progress import Tracker
from ..compressed import LAYOUT_KEYS, build_compressed, compressed_search, decoded, layout_stale
from ..linear_scores import factored, linear_scorer, norms_path, norms_stale, read_norms, write_norms
from ..registry import SPOT_CHECK_FAILED, IndexKind, StaleIndexError, register_index_kind, rescorer, spot_rows


class ScalarQuantizedIndex(IndexKind):
    """FAISS ``IndexScalarQuantizer`` codes, scanned, then every candidate the bound admits rescored exactly."""

    rescored = True

    def __init__(self, index: faiss.Index, params: dict, *rest) -> None:
        super().__init__(index, params, *rest)
        # the per-dimension layout as arrays once, not converted from JSON lists per query
        self.scan_params = {
            **params,
            **{k: np.asarray(v, dtype=np.float64) for k, v in params.items() if isinstance(v, list)},
        }

    @classmethod
    def from_vectors(cls, xb: np.ndarray, params: dict, progress: bool | Tracker = True) -> faiss.Index:
        index, layout = build_compressed(xb, cls.name)
        params.update(layout)
        return index

    @classmethod
    def build(cls, store, heads, path: Path, params: dict, progress: bool | Tracker = True) -> dict:
        params = super().build(store, heads, path, params, progress)
        if factored(heads.real_head):
            write_norms(path, store.feats, heads.real_head)  # before the record: no record, no index
        return params

    @classmethod
    def read(cls, path: Path) -> faiss.Index:
        """Memory-mapped: the codes are not copied into the heap."""
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)

    @classmethod
    def sidecars(cls, path: Path) -> tuple[Path, ...]:
        return (norms_path(path),)

    @classmethod
    def stale_reason(cls, params: dict) -> str | None:
        return layout_stale(cls.name, params)

    @classmethod
    def decoded(cls, stored: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray | float]:
        return decoded(cls.name, stored, params), np.asarray(params["err"]) + 1e-4

    @classmethod
    def open(cls, index, path, store, heads, params, device):
        if not cls.spot_check(index, store, heads, params):
            raise StaleIndexError(SPOT_CHECK_FAILED)
        norms = None
        if factored(heads.real_head):  # read once: checked here, then used by the loaded index
            norms = read_norms(path, len(store))
            reason = norms_stale(norms, store.feats, heads.real_head, spot_rows(len(store)))
            if reason:
                raise StaleIndexError(reason)
        return cls.loaded(index, path, store, heads, params, device, norms)

    @classmethod
    def attach(cls, index, path, store, heads, params, device):
        norms = read_norms(path, len(store)) if factored(heads.real_head) else None
        if factored(heads.real_head) and norms is None:
            raise AttributionError(f"{display_path(norms_path(path))}: missing or damaged; rebuild the index")
        return cls.loaded(index, path, store, heads, params, device, norms)

    @classmethod
    def loaded(cls, index, path, store, heads, params, device, norms: np.ndarray | None) -> ScalarQuantizedIndex:
        """Candidates are scored from the rows' ``norms`` under a linear head (linear_scores.py), else mapped
        through the head."""
        score_rows = linear_scorer(store.feats, heads.real_head, norms) if norms is not None else None
        return cls(index, params, path, device, rescorer(store, heads), score_rows)

    def candidates(self, q, k, calibrator):
        D, I, mass, max_score, self.rescored_rows = compressed_search(
            self.index, self.name, q, k, calibrator, self.scan_params, self.score_rows
        )
        return D, I, mass, max_score


@register_index_kind
class SQ8Index(ScalarQuantizedIndex):
    name = "sq8"
    summary = "sq8 (exact, scanning 8-bit codes, then rescoring from the store)"


@register_index_kind
class FP16Index(ScalarQuantizedIndex):
    name = "fp16"
    summary = "fp16 (exact, scanning float16 codes, then rescoring from the store)"


assert set(LAYOUT_KEYS) == {SQ8Index.name, FP16Index.name}
