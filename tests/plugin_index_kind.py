"""A third-party index kind, as a plug-in would ship it: IVF over 8-bit scalar-quantised codes (FAISS's
``IVF{nlist},SQ8``), registered from outside the library's code. Loaded through
``ATTRIBUTION_PLUGINS=tests.plugin_index_kind`` in the tests, exactly as a user's own module would be.

Its codes are approximate, so it declares ``rescored`` and its candidates are rescored exactly from the store.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from attribution_core.index import IndexKind, Param, register_index_kind


@register_index_kind
class IVFSQ8Index(IndexKind):
    name = "ivfsq8"
    summary = "ivfsq8 (a plug-in: IVF over 8-bit codes, rescored from the store)"
    params = (
        Param("nlist", int, "ivfsq8: inverted lists", default=4),
        Param("nprobe", int, "inverted lists visited per query", default=1, query_time=True),
    )
    rescored = True

    @classmethod
    def from_vectors(cls, xb: np.ndarray, params: dict, progress: bool = True) -> faiss.Index:
        index = faiss.index_factory(xb.shape[1], f"IVF{params['nlist']},SQ8", faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(xb))
        index.add(np.ascontiguousarray(xb))
        return index

    @classmethod
    def decoded(cls, stored: np.ndarray, params: dict) -> tuple[np.ndarray, float]:
        return stored, 0.05  # 8-bit codes of unit vectors

    def apply_param(self, name: str, value: Any) -> None:
        if name == "nprobe":
            faiss.extract_index_ivf(self.index).nprobe = int(value)

    def candidates(self, q, k, calibrator):
        _, rows = self.index.search(q[None], max(4 * k, 64))
        rows = np.sort(rows[0][rows[0] >= 0])
        exact = self.score_rows(rows, q)
        top = np.lexsort((rows, -exact))[:k]
        s_max = float(exact[top[0]])
        return exact[top], rows[top], exact[exact > calibrator.threshold(s_max)], s_max
