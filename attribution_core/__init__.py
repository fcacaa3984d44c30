"""attribution_core: data attribution for text-to-image models.

Data flows one way: images -> backbone features -> (tuned head) -> feature store -> index -> scores ->
calibrated influence. Each arrow is one module; the CLI and the Streamlit app are thin front doors. Attribution
methods and spaces plug in through ``registry`` (the feature-based method and the demo spaces register
themselves when this package is imported).
"""

from . import _startup  # noqa: F401  (first: Ctrl-C during the imports below is one line, not a traceback)
from . import demo as _demo  # noqa: F401  (registers the demo spaces)
from .attribute import Attribution, AttributionResult, Attributor, results_to_csv, results_to_jsonl
from .backbones import Backbone, create_backbone, list_backbones
from .calibration import Calibrator, load_calibrator, save_calibrator, soft_influence
from .counterfactual import base_spaces as _base_spaces  # noqa: F401  (the harness's base model as spaces)
from .errors import AttributionError
from .extract import ExtractReport, extract_features
from .features import FeatureAttributor
from .heads import Heads, LinearHead, create_heads, identity_heads, load_heads, save_heads
from .images import load_rgb
from .index import AttributionIndex, IndexKind, build_index, list_index_kinds, load_index, register_index_kind
from .progress import Cancelled, Progress
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
from .spaces import SpaceSpec
from .store import FeatureStore, import_released_feats, write_store

register_lazy_method(  # diffusers is imported on first use only
    "unlearning",
    "attribution_core.unlearning.attributor",
    options="attribution_core.unlearning.config:UnlearningOptions",
)
register_lazy_method(
    "distilled",
    "attribution_core.distill.attributor",
    options="attribution_core.distill.config:DistilledOptions",
)

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
