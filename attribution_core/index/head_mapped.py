"""The store's features through the real head: what every index kind is built over (chunked, checked)."""

from __future__ import annotations

import numpy as np

from ..core.errors import AttributionError
from ..core.paths import display_path
from ..core.progress import Tracker, as_tracker
from ..data.store import FeatureStore
from ..heads import Heads


def mapped_features(store: FeatureStore, heads: Heads, progress: bool | Tracker = True) -> np.ndarray:
    """The store's features through the real head, unit-norm float32 [N, d] (chunked; progress and cancel)."""
    n, chunk = len(store), 65536
    out = np.empty((n, heads.dim), dtype=np.float32)
    for i in as_tracker(progress).quiet_below(n, chunk).track(range(0, n, chunk), "map features", unit="chunk"):
        out[i : i + chunk] = heads.real_head.map_numpy(store.feats[i : i + chunk])
        if not np.isfinite(out[i : i + chunk]).all():
            bad = i + int(np.flatnonzero(~np.isfinite(out[i : i + chunk]).all(axis=1))[0])
            raise AttributionError(
                f"{display_path(store.path)}: row {bad} ({store.paths[bad]}) maps to NaN/inf under the heads "
                f"{heads.source}; the features or the heads are broken, nothing was indexed"
            )
    return out
