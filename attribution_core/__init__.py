"""attribution_core: data attribution for text-to-image models.

Data flows one way: images -> backbone features -> (tuned head) -> feature store -> index -> scores ->
calibrated influence. Each arrow is one module; the CLI and the Streamlit app are thin front doors. Attribution
methods, spaces and judges plug in through ``registry``; the built-in ones are wired in ``builtin`` and imported on
first use, so importing this package loads no method, no judge and no demo.
"""

from .core import startup as _startup  # noqa: F401  (first, before torch: Ctrl-C during the imports below is one line)

# isort: split
from .attribute.calibration import Calibrator, load_calibrator, save_calibrator, soft_influence
from .attribute.interface import Attribution, AttributionResult, Attributor, results_to_csv, results_to_jsonl
from .attribute.spaces import SpaceSpec
from .backbones import Backbone, create_backbone, list_backbones
from .core.errors import AttributionError
from .core.images import load_rgb
from .core.progress import Cancelled, Progress
from .data.extract import ExtractReport, extract_features
from .data.store import FeatureStore, import_released_feats, write_store
from .heads import Heads, LinearHead, create_heads, identity_heads, load_heads, save_heads
from .index import AttributionIndex, IndexKind, build_index, list_index_kinds, load_index, register_index_kind
from .registry import (
    create_attributor,
    get_space,
    list_methods,
    list_spaces,
    load_spaces_file,
    register_lazy_method,
    register_method,
    register_space,
)


def __getattr__(name: str):  # PEP 562: the feature method is imported on first use
    if name == "FeatureAttributor":
        from .features.attributor import FeatureAttributor

        return FeatureAttributor
    raise AttributeError(f"module 'attribution_core' has no attribute {name!r}")


__all__ = [
    "Attribution",
    "AttributionError",
    "AttributionIndex",
    "AttributionResult",
    "Attributor",
    "Backbone",
    "Calibrator",
    "Cancelled",
    "ExtractReport",
    "FeatureAttributor",
    "FeatureStore",
    "Heads",
    "IndexKind",
    "LinearHead",
    "Progress",
    "SpaceSpec",
    "build_index",
    "create_attributor",
    "create_backbone",
    "create_heads",
    "extract_features",
    "get_space",
    "identity_heads",
    "import_released_feats",
    "list_backbones",
    "list_index_kinds",
    "list_methods",
    "list_spaces",
    "load_calibrator",
    "load_heads",
    "load_index",
    "load_rgb",
    "load_spaces_file",
    "register_index_kind",
    "register_lazy_method",
    "register_method",
    "register_space",
    "results_to_csv",
    "results_to_jsonl",
    "save_calibrator",
    "save_heads",
    "soft_influence",
    "write_store",
]
