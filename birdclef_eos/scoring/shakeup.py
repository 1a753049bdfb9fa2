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


def swap_probability(pub_a: np.ndarray, priv_a: np.ndarray, pub_b: np.ndarray, priv_b: np.ndarray) -> float | None:
    """Share of splits where a and b are strictly ordered on both boards and the order flips, over
    the splits where all four scores exist (a small board can leave none: None)."""
    d_pub, d_priv = np.sign(pub_a - pub_b), np.sign(priv_a - priv_b)
    scored = np.isfinite(d_pub) & np.isfinite(d_priv)
    return float(np.mean((d_pub[scored] * d_priv[scored]) < 0)) if scored.any() else None


def summarise(observed: float, differences: np.ndarray) -> dict:
    """Private minus public on the observed split and over the random ones: {observed, mean, low,
    high (the 95 % range), p_gain (share of splits where private > public)}. A split on which a
    board has no label with both positives and negatives has no score (NaN): it is left out and
    counted in ``undefined_splits``; with none scored, every figure is None and ``undefined`` says why."""
    d = np.asarray(differences, dtype=np.float64)
    scored = d[np.isfinite(d)]
    out = {"observed": round(float(observed), 6) if np.isfinite(observed) else None}
    if len(scored) < len(d):
        out["undefined_splits"] = int(len(d) - len(scored))
    if not len(scored):
        out.update(mean=None, low=None, high=None, p_gain=None,
                   undefined="no split has a label with both positives and negatives on both boards")
        return out
    out.update(mean=round(float(np.mean(scored)), 6), low=round(float(np.percentile(scored, 2.5)), 6),
               high=round(float(np.percentile(scored, 97.5)), 6), p_gain=round(float(np.mean(scored > 0)), 4))
    return out
