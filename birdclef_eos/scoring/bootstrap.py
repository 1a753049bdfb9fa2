"""Paired bootstrap over files: how sure is a difference in macro ROC-AUC between two models?

Files (soundscapes) are resampled with replacement; both models are scored on the same draw, so
the interval is that of the paired difference. A draw that repeats a file holds its rows as
often as the file was drawn; macro-AUC is computed with those multiplicities as file weights
(scoring/pairs.py: each model's file pair counts once, every draw one matrix product), which is
the same number the metric gives on the resampled rows (Mann-Whitney with ties at 1/2), and
columns are kept as the metric keeps them: at least one positive and one negative in the draw.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birdclef_eos.scoring.metric import macro_auc
from birdclef_eos.scoring.pairs import pair_counts, weighted_scores


class BootstrapError(ValueError):
    pass


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
    n_files = counts.shape[1]
    ref_draws = weighted_scores(pair_counts(y_true, reference, inverse, n_files), counts)
    ref_all = macro_auc(y_true, reference)
    tail = (1 - confidence) / 2 * 100
    out = {}
    for name, scores in others.items():
        diffs = ref_draws - weighted_scores(pair_counts(y_true, scores, inverse, n_files), counts)
        diffs = diffs[np.isfinite(diffs)]
        if len(diffs) == 0:
            raise BootstrapError("no draw had a label column with both positives and negatives")
        low, high = np.percentile(diffs, [tail, 100 - tail])
        other_all = macro_auc(y_true, scores)
        out[name] = PairedInterval(score_a=ref_all, score_b=other_all, difference=ref_all - other_all,
                                   low=float(low), high=float(high), draws=int(len(diffs)), n_boot=n_boot,
                                   n_files=int(counts.shape[1]), confidence=confidence)
    return out
