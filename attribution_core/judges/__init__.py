"""Judges: they tell a right attribution from a plausible one. The AbC benchmark (``abc``), calibration on ground
truth (``ground_truth``), leave-K-out and the linear datamodeling score (``counterfactual``), one ``metrics``
module. A judge receives its training set, queries and model variants as arguments and scores through the
method-neutral ``Attributor`` interface: no judge imports a concrete method or the demo."""
