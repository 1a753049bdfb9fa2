"""Paired bootstrap over files: how sure is a difference in macro ROC-AUC between two models?

Files (soundscapes) are resampled with replacement; both models are scored on the same draw, so
the interval is that of the paired difference. A draw that repeats a file holds its rows as
often as the file was drawn; macro-AUC is computed with those multiplicities as row weights,
which is the same number the metric gives on the resampled rows (Mann-Whitney with ties at 1/2),
and columns are kept as the metric keeps them: at least one positive and one negative in the draw.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birdclef_eos.scoring.metric import macro_auc


class BootstrapError(ValueError):
    pass


class WeightedAUC:
    """Macro ROC-AUC of fixed scores under varying row weights; each column is sorted once."""

    def __init__(self, y_true: np.ndarray, y_score: np.ndarray):
        y_true = np.asarray(y_true) > 0.5
        y_score = np.asarray(y_score, dtype=np.float64)
        if y_true.shape != y_score.shape or y_true.ndim != 2:
            raise BootstrapError(f"shape mismatch: truth {y_true.shape} vs scores {y_score.shape}")
        if not np.all(np.isfinite(y_score)):
            raise BootstrapError("scores contain NaN or infinite values")
        n, c = y_true.shape
        order = np.argsort(y_score, axis=0, kind="mergesort")
        self.order = order
        self.pos = np.take_along_axis(y_true, order, axis=0).astype(np.float64)
        s = np.take_along_axis(y_score, order, axis=0)
        new = np.vstack([np.ones((1, c), dtype=bool), s[1:] != s[:-1]])  # a new tie group starts
        group = np.cumsum(new, axis=0) - 1                                 # 0-based within its column
        self.n_groups = int(group.max()) + 1 if n else 0
        self.group = (group + np.arange(c) * self.n_groups).T.ravel()      # column-major, offset per column
        self.shape = (n, c)

    def __call__(self, weights: np.ndarray) -> float:
        """Macro-AUC with ``weights[i]`` copies of row i; NaN when no column has both classes."""
        n, c = self.shape
        w = np.asarray(weights, dtype=np.float64)[self.order]              # [n, c], sorted per column
        wpos, wneg = w * self.pos, w * (1.0 - self.pos)
        size = c * self.n_groups
        gpos = np.bincount(self.group, wpos.T.ravel(), minlength=size).reshape(c, self.n_groups)
        gneg = np.bincount(self.group, wneg.T.ravel(), minlength=size).reshape(c, self.n_groups)
        below = np.cumsum(gneg, axis=1) - gneg
        num = (gpos * (below + 0.5 * gneg)).sum(axis=1)
        tot_pos, tot_neg = gpos.sum(axis=1), gneg.sum(axis=1)
        keep = (tot_pos > 0) & (tot_neg > 0)
        if not keep.any():
            return float("nan")
        return float(np.mean(num[keep] / (tot_pos[keep] * tot_neg[keep])))


@dataclass
class PairedInterval:
    """score_a, score_b: macro-AUC on all files; difference = a - b; [low, high]: the percentile
    interval of the difference over ``draws`` valid resamples (of ``n_boot``); n_files: groups."""
    score_a: float
    score_b: float
    difference: float
    low: float
    high: float
    draws: int
    n_boot: int
    n_files: int
    confidence: float

    def as_dict(self, digits: int = 6) -> dict:
        """JSON-ready: floats rounded, NaN (no interval) as None."""
        return {k: ((round(v, digits) if np.isfinite(v) else None) if isinstance(v, float) else v)
                for k, v in self.__dict__.items()}


def file_draws(groups: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(row -> file index, [n_boot, n_files] times each file is drawn), seeded."""
    _, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    n_files = int(inverse.max()) + 1 if len(inverse) else 0
    if n_files < 2:
        raise BootstrapError(f"{n_files} file(s): a bootstrap over files needs at least 2")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_files, size=(n_boot, n_files))
    counts = np.stack([np.bincount(p, minlength=n_files) for p in picks])
    return inverse, counts


def paired_bootstrap(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, groups: np.ndarray,
                     n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> PairedInterval:
    """Interval of macro-AUC(a) - macro-AUC(b), resampling files (``groups``, one per row) with
    replacement ``n_boot`` times (seeded: the same seed and files give the same draws)."""
    return paired_bootstraps(y_true, score_a, {"b": score_b}, groups, n_boot, seed, confidence)["b"]


def paired_bootstraps(y_true: np.ndarray, reference: np.ndarray, others: dict[str, np.ndarray],
                      groups: np.ndarray, n_boot: int = 1000, seed: int = 0,
                      confidence: float = 0.95) -> dict[str, PairedInterval]:
    """``paired_bootstrap`` of the reference against each model in ``others`` on the same draws;
    each interval is of reference minus other."""
    if not 0 < confidence < 1:
        raise BootstrapError(f"confidence {confidence} not in (0, 1)")
    y_true = np.asarray(y_true) > 0.5
    if len(np.unique(np.asarray(groups).astype(str))) < 2:  # one file: nothing to resample, no interval
        ref_all = macro_auc(y_true, reference)
        return {name: PairedInterval(ref_all, macro_auc(y_true, s), ref_all - macro_auc(y_true, s), float("nan"),
                                     float("nan"), 0, n_boot, 1, confidence) for name, s in others.items()}
    inverse, counts = file_draws(groups, n_boot, seed)
    ref = WeightedAUC(y_true, reference)
    ref_draws = np.array([ref(c[inverse]) for c in counts])
    ref_all = macro_auc(y_true, reference)
    tail = (1 - confidence) / 2 * 100
    out = {}
    for name, scores in others.items():
        model = WeightedAUC(y_true, scores)
        diffs = ref_draws - np.array([model(c[inverse]) for c in counts])
        diffs = diffs[np.isfinite(diffs)]
        if len(diffs) == 0:
            raise BootstrapError("no draw had a label column with both positives and negatives")
        low, high = np.percentile(diffs, [tail, 100 - tail])
        other_all = macro_auc(y_true, scores)
        out[name] = PairedInterval(score_a=ref_all, score_b=other_all, difference=ref_all - other_all,
                                   low=float(low), high=float(high), draws=int(len(diffs)), n_boot=n_boot,
                                   n_files=int(counts.shape[1]), confidence=confidence)
    return out
