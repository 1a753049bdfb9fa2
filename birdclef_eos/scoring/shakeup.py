"""The shake-up: how far a submission's private score can move from its public one when the
hidden files are dealt to the two boards at random (by file, about 30/70, as on Kaggle).

Macro ROC-AUC is not a sum over files, but each class's AUC is a ratio of pair counts, and pair
counts are sums over file pairs. ``pair_counts`` computes once, per class, how many (positive,
negative) pairs from file i and file j are ordered right (ties 1/2); the AUC of any set of files S
is then s' C s / ((s' pos)(s' neg)) with s the indicator of S, so a thousand splits are one matrix
product, not a thousand metric calls. The private board is the complement of the public one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class ShakeupError(ValueError):
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
        raise ShakeupError(f"shape mismatch: truth {y.shape} vs scores {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ShakeupError("scores contain NaN or infinite values")
    n, k = y.shape
    f = np.asarray(file_of_row)
    conc = np.zeros((n_files, k, n_files))
    onehot = np.eye(n_files)[f]                                   # [N, F]
    pos = (onehot[:, :, None] * y[:, None, :]).sum(axis=0)         # [F, K]
    neg = (onehot[:, :, None] * (~y)[:, None, :]).sum(axis=0)
    for c in range(k):
        p_rows, n_rows = np.flatnonzero(y[:, c]), np.flatnonzero(~y[:, c])
        if len(p_rows) == 0 or len(n_rows) == 0:
            continue
        order = n_rows[np.argsort(s[n_rows, c], kind="mergesort")]
        neg_sorted = s[order, c]
        cum = np.vstack([np.zeros(n_files), np.cumsum(onehot[order], axis=0)])  # [n_neg + 1, F]
        lo = np.searchsorted(neg_sorted, s[p_rows, c], side="left")
        hi = np.searchsorted(neg_sorted, s[p_rows, c], side="right")
        below = cum[lo] + 0.5 * (cum[hi] - cum[lo])                            # [n_pos, F]
        np.add.at(conc[:, c, :], f[p_rows], below)
    return PairCounts(conc=conc, pos=pos, neg=neg)


def split_scores(pc: PairCounts, public: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(public macro-AUC [B], private macro-AUC [B]) for each row of ``public`` (bool [B, F]: the
    public files of a split; the rest are private). A class counts on a board when it has a
    positive and a negative there (the competition metric's rule); a board with no such class is NaN."""
    S = np.asarray(public, dtype=np.float64)
    F, K, _ = pc.conc.shape
    if S.ndim != 2 or S.shape[1] != F:
        raise ShakeupError(f"splits have {S.shape[-1]} files, the pair counts {F}")
    flat = pc.conc.reshape(F, K * F)
    SC = (S @ flat).reshape(len(S), K, F)                  # [B, K, F]: sum_i s_i conc[i, k, j]
    ss = np.einsum("bkf,bf->bk", SC, S)                    # s' C s
    row = pc.conc.sum(axis=2)                              # [F, K]: sum_j conc[i, k, j]
    col = pc.conc.sum(axis=0).T                            # [F, K]: sum_i conc[i, k, j]
    total = pc.conc.sum(axis=(0, 2))                       # [K]
    R = 1.0 - S
    rr = total[None, :] - S @ row - S @ col + ss           # (1-s)' C (1-s)
    out = []
    for num, M in ((ss, S), (rr, R)):
        p, n = M @ pc.pos, M @ pc.neg                      # [B, K]
        keep = (p > 0) & (n > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = np.where(keep, num / np.where(keep, p * n, 1.0), 0.0)
        count = keep.sum(axis=1)
        out.append(np.where(count > 0, auc.sum(axis=1) / np.maximum(count, 1), np.nan))
    return out[0], out[1]


def random_splits(n_files: int, public_share: float, n_splits: int, seed: int) -> np.ndarray:
    """bool [n_splits, n_files]: each row puts round(share x files) files, drawn without
    replacement, on the public board (seeded)."""
    if not 0 < public_share < 1:
        raise ShakeupError(f"public share {public_share} not in (0, 1)")
    n_public = int(round(public_share * n_files))
    if not 0 < n_public < n_files:
        raise ShakeupError(f"{n_files} files cannot be split {public_share:.0%} / {1 - public_share:.0%} with a file on each board")
    rng = np.random.default_rng(seed)
    out = np.zeros((n_splits, n_files), dtype=bool)
    for b in range(n_splits):
        out[b, rng.choice(n_files, n_public, replace=False)] = True
    return out


def swap_probability(pub_a: np.ndarray, priv_a: np.ndarray, pub_b: np.ndarray, priv_b: np.ndarray) -> float:
    """Share of splits where a and b are strictly ordered on both boards and the order flips."""
    d_pub, d_priv = np.sign(pub_a - pub_b), np.sign(priv_a - priv_b)
    return float(np.mean((d_pub * d_priv) < 0))
