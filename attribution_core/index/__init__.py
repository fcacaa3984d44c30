"""FAISS indexes over head-mapped store features: registered kinds (index/kinds/), built, verified, loaded and
searched with exact calibrated influence."""

from . import kinds  # noqa: F401  (registers the built-in kinds)
from .head_mapped import mapped_features
from .persist import INDEX_FORMAT, build_index, index_dir, index_paths, load_index, open_index, prune_cache
from .registry import (
    IndexKind,
    Param,
    build_faiss,
    default_params,
    get_index_kind,
    list_index_kinds,
    query_param_names,
    register_index_kind,
)
from .search import AttributionIndex, IndexMeta, SearchResult

__all__ = [
    "INDEX_FORMAT",
    "AttributionIndex",
    "IndexKind",
    "IndexMeta",
    "Param",
    "SearchResult",
    "build_faiss",
    "build_index",
    "default_params",
    "get_index_kind",
    "index_dir",
    "index_paths",
    "list_index_kinds",
    "load_index",
    "mapped_features",
    "open_index",
    "prune_cache",
    "query_param_names",
    "register_index_kind",
]
