"""User-facing errors: one line that names the file, the problem and what to do."""

from __future__ import annotations


class AttributionError(Exception):
    """A mistake in the user's input or set-up, reported as one line without a traceback."""


class InputImageError(AttributionError):
    """An image file that cannot be read as an image (missing, not an image, truncated, too large)."""


class CheckpointError(AttributionError):
    """A weights file that is missing, unsafe, or does not fit the model it is loaded into."""


class StoreError(AttributionError):
    """A feature store that is missing, incomplete, or does not fit the backbone or head."""


class WeightsNotFoundError(AttributionError):
    """A backbone's pretrained weights are not on this machine."""


class SpaceNotReadyError(AttributionError):
    """A named feature space whose files are not (all) present yet."""
