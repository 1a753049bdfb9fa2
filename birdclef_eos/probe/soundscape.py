"""A second probe ranking, on labelled soundscape chunks instead of focal clips.

Per block: a cross-validated multi-label linear probe on the chunk features (folds grouped by
soundscape file, so the chunks of one file never sit on both sides), scored by the competition's
macro ROC-AUC of the out-of-fold scores. ``ridge`` is a closed-form multi-output ridge regression
on standardised features (one solve per fold, fast); ``logistic`` a one-vs-rest logistic
regression (slower). Then the Spearman correlation of this ranking with the focal kNN ranking.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import spearmanr
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from birdclef_eos.probe.config import METHODS
from birdclef_eos.scoring.metric import MetricError, macro_auc


class SoundscapeProbeError(ValueError):
    pass


def file_folds(groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold (0..n_folds-1) of every row; the files are shuffled (seeded) and dealt round-robin."""
    files, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    if len(files) < n_folds:
        raise SoundscapeProbeError(f"{len(files)} labelled soundscape file(s) cannot fill {n_folds} folds")
    fold_of_file = np.empty(len(files), dtype=np.int64)
    fold_of_file[np.random.default_rng(seed).permutation(len(files))] = np.arange(len(files)) % n_folds
    return fold_of_file[inverse]


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(axis=0), train.std(axis=0)
    std[std < 1e-8] = 1.0
    return (train - mean) / std, (test - mean) / std


def fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, method: str, c: float,
                max_iter: int) -> np.ndarray:
    """Scores [n_test, n_classes] of one fold (higher = more likely)."""
    x_train, x_test = standardise(x_train.astype(np.float64), x_test.astype(np.float64))
    if method == "ridge":
        # ridge in its dual or primal form, whichever matrix is smaller; alpha = 1 / c
        y = y_train - y_train.mean(axis=0)
        n, d = x_train.shape
        if d <= n:
            w = np.linalg.solve(x_train.T @ x_train + np.eye(d) / c, x_train.T @ y)
        else:
            w = x_train.T @ np.linalg.solve(x_train @ x_train.T + np.eye(n) / c, y)
        return x_test @ w
    if method == "logistic":
        out = np.zeros((len(x_test), y_train.shape[1]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for j in range(y_train.shape[1]):
                if 0 < y_train[:, j].sum() < len(y_train):  # a class absent from the fold scores 0
                    model = LogisticRegression(C=c, max_iter=max_iter).fit(x_train, y_train[:, j])
                    out[:, j] = model.decision_function(x_test)
        return out
    raise SoundscapeProbeError(f"unknown method '{method}' (choose from {METHODS})")


def score_block(x: np.ndarray, y: np.ndarray, folds: np.ndarray, method: str = "ridge", c: float = 1.0,
                max_iter: int = 200) -> float:
    """Out-of-fold macro-AUC of one block's features (NaN when no label column has both classes)."""
    oof = np.zeros(y.shape, dtype=np.float64)
    for k in np.unique(folds):
        test = folds == k
        oof[test] = fit_predict(x[~test], y[~test], x[test], method, c, max_iter)
    try:
        return macro_auc(y, oof)
    except MetricError:
        return float("nan")


def rank_scores(scores: dict[str, float]) -> dict[str, int]:
    """Rank 1 = best score; ties go to the deeper block (the later name), as the focal probe."""
    deepest_first = sorted(scores, reverse=True)
    order = sorted(deepest_first, key=lambda name: -scores[name] if np.isfinite(scores[name]) else np.inf)
    return {name: i + 1 for i, name in enumerate(order)}


def score_blocks(blocks: dict[str, np.ndarray], y: np.ndarray, groups: np.ndarray, n_folds: int = 5,
                 seed: int = 0, method: str = "ridge", c: float = 1.0, max_iter: int = 200,
                 progress=None) -> dict:
    """{"blocks": {name: {"macro_auc", "rank"}}, "n_chunks", "n_files", "n_classes"} on shared folds."""
    y = (np.asarray(y) > 0.5).astype(np.float64)
    groups = np.asarray(groups)
    for name, x in blocks.items():
        if len(x) != len(y):
            raise SoundscapeProbeError(f"block '{name}' has {len(x)} rows for {len(y)} labelled chunks")
        if not np.all(np.isfinite(x)):
            raise SoundscapeProbeError(f"block '{name}' has non-finite features")
    folds = file_folds(groups, n_folds, seed)
    names = list(blocks)
    scores = {}
    with threadpool_limits(limits=1):
        for name in (progress(names) if progress else names):
            scores[name] = score_block(np.asarray(blocks[name]), y, folds, method, c, max_iter)
    ranks = rank_scores(scores)
    return {"blocks": {n: defined(scores[n], UNDEFINED_AUC) | {"rank": ranks[n]} for n in names},
            "n_chunks": int(len(y)), "n_files": int(len(np.unique(groups.astype(str)))),
            "n_classes_scored": int(((y.sum(axis=0) > 0) & (y.sum(axis=0) < len(y))).sum())}


def defined(value: float, reason: str, key: str = "macro_auc") -> dict:
    """{key: value} when finite, else {key: None, "undefined": reason}: JSON holds no NaN, and a
    reader says why a number is missing."""
    if value is not None and np.isfinite(value):
        return {key: float(value)}
    return {key: None, "undefined": reason}


UNDEFINED_AUC = "no label column has both positives and negatives in the labelled soundscape chunks"


def rank_agreement(focal: dict[str, float], soundscape: dict[str, float | None]) -> dict:
    """Spearman rho between two per-block scores over the blocks both have (finite): rho and
    p_value are None, with the reason in "undefined", below 3 such blocks or when either ranking
    is constant (rho is then undefined)."""
    common = sorted(n for n in focal if n in soundscape and focal[n] is not None and soundscape[n] is not None
                    and np.isfinite(focal[n]) and np.isfinite(soundscape[n]))
    if len(common) < 3:
        return {"rho": None, "p_value": None, "n_blocks": len(common),
                "undefined": f"{len(common)} block(s) scored by both probes; a rank correlation needs 3"}
    a, b = [focal[n] for n in common], [soundscape[n] for n in common]
    if len(set(a)) < 2 or len(set(b)) < 2:
        return {"rho": None, "p_value": None, "n_blocks": len(common),
                "undefined": "one probe gives every block the same score; a rank correlation is undefined"}
    res = spearmanr(a, b)
    return {"rho": float(res.statistic), "p_value": float(res.pvalue), "n_blocks": len(common)}
