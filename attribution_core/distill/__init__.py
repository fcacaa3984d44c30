"""Distilled attribution (FastGDA, docs/method.md §9): unlearning's rankings on generated queries, learnt by a small
feature model. This package holds the labels so far: ``labels`` (queries, unlearning on candidates, the label
store) and ``labels_ray`` (the same labels from a pool of Ray workers)."""
