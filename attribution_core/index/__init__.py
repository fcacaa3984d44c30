"""FAISS indexes over head-mapped store features: build, verify, load, search with exact influence."""

from .build import build_faiss, default_params, mapped_features
from .persist import INDEX_FORMAT, build_index, index_dir, index_paths, load_index, open_index, prune_cache, spot_check
from .search import INDEX_KINDS, AttributionIndex, IndexMeta, SearchResult

__all__ = [
    "INDEX_FORMAT",
    "INDEX_KINDS",
    "AttributionIndex",
    "IndexMeta",
    "SearchResult",
    "build_faiss",
    "build_index",
    "default_params",
    "index_dir",
    "index_paths",
    "load_index",
    "mapped_features",
    "open_index",
    "prune_cache",
    "spot_check",
]
