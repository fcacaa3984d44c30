"""attribution_core: data attribution for text-to-image models (AbC feature-based attribution).

Data flows one way: images -> backbone features -> (tuned head) -> feature store -> index -> scores ->
calibrated influence. Each arrow is one module; the CLI and the Streamlit app are thin front doors.
"""

from .attribute import Attribution, AttributionResult, Attributor, FeatureAttributor
from .backbones import Backbone, create_backbone, list_backbones
from .calibration import Calibrator, load_calibrator, save_calibrator, soft_influence
from .errors import AttributionError
from .extract import ExtractReport, extract_features
from .heads import Heads, LinearHead, identity_heads, load_heads, save_heads
from .images import load_rgb
from .index import INDEX_KINDS, AttributionIndex, build_index, load_index
from .spaces import SpaceSpec, get_space, list_spaces
from .store import FeatureStore, import_released_feats, write_store

__all__ = [
    "INDEX_KINDS",
    "Attribution",
    "AttributionError",
    "AttributionIndex",
    "AttributionResult",
    "Attributor",
    "Backbone",
    "Calibrator",
    "ExtractReport",
    "FeatureAttributor",
    "FeatureStore",
    "Heads",
    "LinearHead",
    "SpaceSpec",
    "build_index",
    "create_backbone",
    "extract_features",
    "get_space",
    "identity_heads",
    "import_released_feats",
    "list_backbones",
    "list_spaces",
    "load_calibrator",
    "load_heads",
    "load_index",
    "load_rgb",
    "save_calibrator",
    "save_heads",
    "soft_influence",
    "write_store",
]
