"""The competition metric: macro ROC-AUC over the label columns with at least one positive."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


class MetricError(ValueError):
    pass


def macro_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Macro ROC-AUC over the columns of ``y_true`` that have at least one positive.

    Columns with no positive are dropped, as in the official BirdCLEF metric. A column whose
    positives fill every row is dropped too (its AUC is undefined).
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.shape != y_score.shape:
        raise MetricError(f"shape mismatch: solution {y_true.shape} vs submission {y_score.shape}")
    if not np.all(np.isfinite(y_score)):
        raise MetricError("submission contains NaN or infinite scores")
    positives = y_true.sum(axis=0)
    keep = (positives > 0) & (positives < len(y_true))
    if not keep.any():
        raise MetricError("no label column has both positives and negatives")
    return float(roc_auc_score(y_true[:, keep], y_score[:, keep], average="macro"))


def score(solution: pd.DataFrame, submission: pd.DataFrame, row_id: str = "row_id") -> float:
    """Score a submission frame against a solution frame (both keyed by ``row_id``)."""
    labels = [c for c in solution.columns if c != row_id]
    missing = [c for c in labels if c not in submission.columns]
    if missing:
        raise MetricError(f"submission lacks label columns {missing[:5]}{'...' if len(missing) > 5 else ''}")
    for c in labels:
        if not pd.api.types.is_numeric_dtype(submission[c]):
            raise MetricError(f"submission column '{c}' is not numeric")
    sub = submission.set_index(row_id).reindex(solution[row_id])
    if sub[labels].isna().any().any():
        raise MetricError("submission is missing rows of the solution or has NaN scores")
    return macro_auc(solution[labels].to_numpy(), sub[labels].to_numpy())
