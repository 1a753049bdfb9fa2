"""Per-block probes of a frozen backbone: grouped k-fold kNN accuracy, intervals, ranking.

Every block's features are scored with the same folds: stratified by species and grouped by
recording, so windows cut from one recording never sit on both sides of a split (they would
find each other as nearest neighbours and inflate the score).
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from birdclef_eos.probe.config import DISTANCES, NORMALISATIONS  # the choices, written once


class ProbeError(ValueError):
    pass


def grouped_folds(labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold number (0..n_folds-1) of every sample; a group (recording) stays in one fold."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    if len(np.unique(groups)) < n_folds:
        raise ProbeError(f"{len(np.unique(groups))} recordings cannot fill {n_folds} folds")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fold = np.full(len(labels), -1, dtype=np.int64)
    # StratifiedGroupKFold warns when a class has fewer groups than folds; that is expected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for k, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
            fold[test] = k
    return fold


def normalise_features(train: np.ndarray, test: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Feature normalisation fitted on the training fold only."""
    if how == "none":
        return train, test
    if how == "standardize":
        mean, std = train.mean(axis=0), train.std(axis=0)
        std[std < 1e-8] = 1.0
        return (train - mean) / std, (test - mean) / std
    if how == "l2":
        def unit(x):
            return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return unit(train), unit(test)
    raise ProbeError(f"unknown normalisation '{how}' (choose from {NORMALISATIONS})")


def knn_correct(features: np.ndarray, labels: np.ndarray, folds: np.ndarray, k: int,
                distance: str, normalisation: str) -> np.ndarray:
    """Out-of-fold kNN top-1: one boolean per sample, True where the prediction is right."""
    if distance not in DISTANCES:
        raise ProbeError(f"unknown distance '{distance}' (choose from {DISTANCES})")
    x = np.asarray(features, dtype=np.float64)
    correct = np.zeros(len(labels), dtype=bool)
    for k_fold in np.unique(folds):
        test = folds == k_fold
        train_x, test_x = normalise_features(x[~test], x[test], normalisation)
        model = KNeighborsClassifier(n_neighbors=min(k, int((~test).sum())), metric=distance,
                                     algorithm="brute")
        model.fit(train_x, labels[~test])
        correct[test] = model.predict(test_x) == labels[test]
    return correct


def linear_correct(features: np.ndarray, labels: np.ndarray, folds: np.ndarray,
                   c: float, max_iter: int) -> np.ndarray:
    """Out-of-fold logistic-regression top-1 on standardized features (a second opinion)."""
    x = np.asarray(features, dtype=np.float64)
    correct = np.zeros(len(labels), dtype=bool)
    for k_fold in np.unique(folds):
        test = folds == k_fold
        train_x, test_x = normalise_features(x[~test], x[test], "standardize")
        model = LogisticRegression(C=c, max_iter=max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(train_x, labels[~test])
        correct[test] = model.predict(test_x) == labels[test]
    return correct


def bootstrap_interval(correct: np.ndarray, groups: np.ndarray, n_boot: int, seed: int,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the accuracy, resampling whole recordings (windows of one
    recording are not independent)."""
    correct = np.asarray(correct, dtype=np.float64)
    _, group_idx = np.unique(groups, return_inverse=True)
    hits = np.bincount(group_idx, weights=correct)
    sizes = np.bincount(group_idx).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(hits), size=(n_boot, len(hits)))
    accuracies = hits[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(accuracies, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray, groups: np.ndarray, n_boot: int, seed: int,
                      level: float = 0.95) -> dict:
    """Accuracy of a minus accuracy of b on the same clips, with a paired percentile interval: whole
    recordings are resampled once per draw and both blocks are scored on that draw, so the interval
    is of the difference, not two intervals set side by side (``bootstrap_interval``'s draws)."""
    a, b = np.asarray(correct_a, dtype=np.float64), np.asarray(correct_b, dtype=np.float64)
    if a.shape != b.shape or a.shape != np.asarray(groups).shape:
        raise ProbeError(f"paired accuracies need one value per clip: {a.shape}, {b.shape}, groups {np.shape(groups)}")
    _, group_idx = np.unique(groups, return_inverse=True)
    sizes = np.bincount(group_idx).astype(np.float64)
    delta = np.bincount(group_idx, weights=a - b)             # per recording: hits of a minus hits of b
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sizes), size=(n_boot, len(sizes)))
    diffs = delta[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(diffs, [tail, 1.0 - tail])
    return {"difference": round(float(a.mean() - b.mean()), 6), "low": round(float(low), 6),
            "high": round(float(high), 6), "recordings": int(len(sizes)), "draws": int(n_boot), "confidence": level}


def chance_level(labels: np.ndarray) -> float:
    """Accuracy of always guessing the most frequent class (1/K for balanced classes)."""
    _, counts = np.unique(labels, return_counts=True)
    return float(counts.max() / counts.sum())


def score_block(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: np.ndarray,
                cfg: dict) -> dict:
    """kNN accuracy with its interval and the linear-probe accuracy of one block."""
    correct = knn_correct(features, labels, folds, cfg["k"], cfg["distance"], cfg["normalisation"])
    low, high = bootstrap_interval(correct, groups, cfg["bootstrap"], cfg["seed"])
    out = {"accuracy": float(correct.mean()), "ci_low": low, "ci_high": high,
           "dim": int(features.shape[1]), "correct": correct}
    if cfg.get("linear_probe", True):
        out["linear_accuracy"] = float(
            linear_correct(features, labels, folds, cfg["linear_c"], cfg["linear_max_iter"]).mean())
    return out


def rank_blocks(scores: dict[str, dict]) -> dict[str, int]:
    """Rank 1 = best kNN accuracy; ties go to the deeper block (the later name)."""
    deepest_first = sorted(scores, reverse=True)
    order = sorted(deepest_first, key=lambda name: -scores[name]["accuracy"])  # stable sort
    return {name: i + 1 for i, name in enumerate(order)}


def top_blocks(scores: dict[str, dict], n: int) -> list[int]:
    """Indices of the top ``n`` blocks by kNN accuracy, in ascending block order."""
    ranks = rank_blocks(scores)
    chosen = [name for name, r in ranks.items() if r <= n]
    return sorted(int(name.split("_")[-1]) for name in chosen)


def score_blocks(blocks: dict[str, np.ndarray], labels: np.ndarray, groups: np.ndarray,
                 cfg: dict, progress=None) -> dict:
    """Score every block on shared folds; returns per-block scores with ranks, chance, folds and
    ``correct`` (block -> bool per clip: what paired comparisons of two blocks resample)."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    for name, x in blocks.items():
        if len(x) != len(labels):
            raise ProbeError(f"block '{name}' has {len(x)} rows for {len(labels)} clips")
        if not np.all(np.isfinite(x)):
            raise ProbeError(f"block '{name}' has non-finite features")
    folds = grouped_folds(labels, groups, cfg["folds"], cfg["seed"])
    names = list(blocks)
    scores = {}
    # small matrices: one BLAS thread is faster, and far faster on a busy machine (no spin-waits)
    with threadpool_limits(limits=1):
        for name in (progress(names) if progress else names):
            scores[name] = score_block(blocks[name], labels, groups, folds, cfg)
    correct = {name: scores[name].pop("correct") for name in names}
    for name, rank in rank_blocks(scores).items():
        scores[name]["rank"] = rank
    return {"blocks": scores, "chance": chance_level(labels), "folds": folds, "correct": correct}
