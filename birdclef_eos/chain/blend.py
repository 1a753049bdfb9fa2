"""The chain's rank blend: per class, each model's scores become ranks over ALL rows, then a weighted sum.

``rank_blend({"protossm": P1, "sed": P2}, {"protossm": 0.6, "sed": 0.4})`` with P [N, K]: each column of
each model is replaced by its average rank / N (ties share their mean rank; values in (0, 1]), and the
weighted sum is divided by the sum of the weights. Ranking over every test row at once (before rows
are split into boards) is what the chain does; ranking each board apart would give other numbers.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


class BlendError(ValueError):
    pass


def column_ranks(P: np.ndarray) -> np.ndarray:
    """[N, K] average ranks per column, divided by N."""
    P = np.asarray(P, dtype=np.float64)
    return rankdata(P, axis=0, method="average") / max(len(P), 1)


def rank_blend(preds: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    missing = sorted(set(weights) - set(preds))
    if missing:
        raise BlendError(f"rank_blend: no predictions for {missing}")
    shapes = {name: np.shape(preds[name]) for name in weights}
    if len(set(shapes.values())) != 1:
        raise BlendError(f"rank_blend: shapes differ {shapes}")
    total = float(sum(weights.values()))
    if total <= 0:
        raise BlendError(f"rank_blend: weights {weights} do not sum to a positive number")
    return sum(w * column_ranks(preds[name]) for name, w in weights.items()) / total
