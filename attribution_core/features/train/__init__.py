"""Training the feature-based method's parts: heads (contrastive) and the calibrator (docs/method.md §3)."""

from ...attribute.calibration import CalibratorTrainingConfig, fit_calibrator
from .calibrator import calibration_scores
from .heads import FeatureSplit, HeadTrainingConfig, TrainingReport, contrastive_loss, split_metrics, train_heads
from .inputs import training_inputs

__all__ = [
    "CalibratorTrainingConfig",
    "FeatureSplit",
    "HeadTrainingConfig",
    "TrainingReport",
    "calibration_scores",
    "contrastive_loss",
    "fit_calibrator",
    "split_metrics",
    "train_heads",
    "training_inputs",
]
