"""The linear datamodeling score (docs/method.md §8): how well a method's scores, summed over a training subset,
predict the query's loss under a model trained on that subset, as a rank correlation over the subset models.

Sign convention: a higher score means the image helps the query, so a subset holding more of the query's score
should give the query a *lower* loss; the predicted effect of training on subset ``S_j`` is therefore
``g_j = -sum_{i in S_j} tau_i`` and ``LDS = Spearman(g, f)`` with ``f_j`` the measured loss. A method whose scores
predict the losses perfectly (in rank) scores 1, one that knows nothing scores about 0. The tables, their rules and
intervals are ``lds_tables`` and ``lds_stats``.
"""

from __future__ import annotations

from ..metrics import lds, predicted_effects

__all__ = ["lds", "predicted_effects"]
