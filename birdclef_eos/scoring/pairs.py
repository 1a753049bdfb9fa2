"""Macro ROC-AUC under per-file weights, fast: file pair counts computed once per submission.

Macro ROC-AUC is not a sum over files, but each class's AUC is a ratio of pair counts, and pair
counts are sums over file pairs. ``pair_counts`` counts once, per class, how many (positive,
negative) pairs from file i and file j are ordered right (ties 1/2); the AUC under file weights w
is then w' C w / ((w' pos)(w' neg)), so a thousand bootstrap draws or board splits are one matrix
product, not a thousand metric calls (scoring/bootstrap.py, scoring/shakeup.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class PairsError(ValueError):
    pass


@dataclass
class PairCounts:
    """conc: float64 [F, K, F]: per class k, sum over positive rows of file i and negative rows of
    file j of 1[score_p > score_n] + 0.5 * 1[equal]; pos, neg: float64 [F, K] positive / negative
    row counts per file and class."""
    conc: np.ndarray
    pos: np.ndarray
    neg: np.ndarray


def file_index(files) -> tuple[np.ndarray, list[str]]:
    """(row -> file index, file names in first-seen order)."""
    names, inverse = np.unique(np.asarray(files).astype(str), return_inverse=True)
    return inverse, list(names)


def pair_counts(y_true: np.ndarray, scores: np.ndarray, file_of_row: np.ndarray, n_files: int) -> PairCounts:
    """``PairCounts`` of one submission: y_true, scores [N, K]; file_of_row int [N] in [0, n_files)."""
    y = np.asarray(y_true) > 0.5
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 2:
        raise PairsError(f"shape mismatch: truth {y.shape} vs scores {s.shape}")
    if not np.all(np.isfinite(s)):
        raise PairsError("scores contain NaN or infinite values")
    n, k = y.shape
    f = np.asarray(file_of_row)
    conc = np.zeros((n_files, k, n_files))
    onehot = np.eye(n_files)[f]                                   # [N, F]
    pos = onehot.T @ y.astype(np.float64)                           # [F, K] (exact counts)
    neg = onehot.T @ (~y).astype(np.float64)
    for c in range(k):
        p_rows, n_rows = np.flatnonzero(y[:, c]), np.flatnonzero(~y[:, c])
        if len(p_rows) == 0 or len(n_rows) == 0:
            continue
        order = n_rows[np.argsort(s[n_rows, c], kind="mergesort")]
        neg_sorted = s[order, c]
        lo = np.searchsorted(neg_sorted, s[p_rows, c], side="left")   # negatives strictly below
        hi = np.searchsorted(neg_sorted, s[p_rows, c], side="right")  # ... or tied
        below = files_before(np.concatenate([lo, hi]), f[order], n_files)
        below = below[:len(lo)] + 0.5 * (below[len(lo):] - below[:len(lo)])  # [n_pos, F]
        np.add.at(conc[:, c, :], f[p_rows], below)
    return PairCounts(conc=conc, pos=pos, neg=neg)


def files_before(cuts: np.ndarray, file_sorted: np.ndarray, n_files: int) -> np.ndarray:
    """[len(cuts), F]: for each position x in ``cuts``, how many of the first x rows of
    ``file_sorted`` (file index per row, in score order) belong to each file. Counts rows once
    between consecutive cuts (bincount), not a cumulative table over every row."""
    points, where = np.unique(cuts, return_inverse=True)
    segment = np.searchsorted(points, np.arange(len(file_sorted)), side="right")  # points <= row
    counts = np.bincount(segment * n_files + file_sorted, minlength=(len(points) + 1) * n_files)
    return np.cumsum(counts.reshape(len(points) + 1, n_files)[:len(points)], axis=0)[where].astype(np.float64)


def weighted_scores(pc: PairCounts, weights: np.ndarray) -> np.ndarray:
    """Macro-AUC [B] for each row of ``weights`` ([B, F]: how many times each file counts: 0/1 for a
    split into boards, draw counts for a bootstrap). A pair of rows from files i and j weighs
    w_i x w_j, which is the metric on the resampled rows; a class counts when it has a positive and
    a negative of non-zero weight (the competition metric's rule); NaN when no class does."""
    W = check_weights(pc, weights)
    return macro_from_counts(numerators(pc, W), W @ pc.pos, W @ pc.neg)


def complement_scores(pc: PairCounts, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(``weighted_scores(pc, S)``, ``weighted_scores(pc, 1 - S)``) for 0/1 rows S, at the cost of
    one: (1-S)' C (1-S) = total - S' C 1 - 1' C S + S' C S. Every term is a sum of 0/1 x half-integer
    counts, exact in float64, so both equal the separate calls bit for bit."""
    S = check_weights(pc, weights)
    if not np.isin(S, (0.0, 1.0)).all():
        raise PairsError("complement_scores needs 0/1 weights (a split of the files)")
    num = numerators(pc, S)
    rest = pc.conc.sum(axis=(0, 2)) - S @ pc.conc.sum(axis=2) - S @ pc.conc.sum(axis=0).T + num
    U = 1.0 - S
    return macro_from_counts(num, S @ pc.pos, S @ pc.neg), macro_from_counts(rest, U @ pc.pos, U @ pc.neg)


def check_weights(pc: PairCounts, weights: np.ndarray) -> np.ndarray:
    W = np.asarray(weights, dtype=np.float64)
    F = pc.conc.shape[0]
    if W.ndim != 2 or W.shape[1] != F:
        raise PairsError(f"weights have {W.shape[-1]} files, the pair counts {F}")
    return W


def numerators(pc: PairCounts, W: np.ndarray) -> np.ndarray:
    """[B, K]: w' C_k w for each row w of W, the weighted count of rightly ordered pairs.

    Only the (file i, class k) rows of C with a counted pair enter: a file without a positive of
    class k has an all-zero row C_k[i, :]. On the hidden set (150 files, 48 classes, a few species
    per file) that is 921 of 7,200 rows, so the product is about eight times smaller than the dense
    one. Every term is a whole draw count times a half-integer pair count, exact in float64, so the
    order of the sums cannot move a bit: the result equals the dense product's bit for bit."""
    F, K, _ = pc.conc.shape
    file_i, cls = np.nonzero(pc.conc.any(axis=2))            # the non-zero rows, [R] each
    rows = pc.conc[file_i, cls, :]                           # [R, F]
    to_class = np.zeros((len(cls), K))                       # [R, K]: row r adds to its class
    to_class[np.arange(len(cls)), cls] = 1.0
    out = np.empty((len(W), K))
    for start in range(0, len(W), 256):                      # bounded memory: [256, R] at a time
        w = W[start:start + 256]
        out[start:start + len(w)] = ((w @ rows.T) * w[:, file_i]) @ to_class
    return out


def macro_from_counts(num: np.ndarray, p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Macro-AUC [B] from numerators, weighted positive and negative counts (all [B, K])."""
    keep = (p > 0) & (n > 0)
    auc = np.where(keep, num / np.where(keep, p * n, 1.0), 0.0)
    count = keep.sum(axis=1)
    return np.where(count > 0, auc.sum(axis=1) / np.maximum(count, 1), np.nan)
