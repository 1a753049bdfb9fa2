"""The shake-up: how far a submission's private score can move from its public one when the
hidden files are dealt to the two boards at random (by file, about 30/70, as on Kaggle).

Each split is a 0/1 weight per file (scoring/pairs.py), so a thousand splits of one submission are
one matrix product over its file pair counts, computed once; the private board is the complement.
"""
from __future__ import annotations

import numpy as np

from birdclef_eos.scoring.pairs import PairCounts, complement_scores


class ShakeupError(ValueError):
    pass


def split_scores(pc: PairCounts, public: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(public macro-AUC [B], private macro-AUC [B]) for each row of ``public`` (bool [B, F]: the
    public files of a split; the rest are private)."""
    return complement_scores(pc, np.asarray(public, dtype=np.float64))


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
