"""The feature family (AbC, docs/method.md §2–3): an encoder on the query and training sides, a feature store, a
FAISS index and calibrated influence; and its training (``train``: heads and calibration scores)."""

from .attributor import FeatureAttributor, FeatureOptions

__all__ = ["FeatureAttributor", "FeatureOptions"]
