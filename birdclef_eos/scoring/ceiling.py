"""The blend plateau (paper section 7): how a blend's score moves with its partner's weight and
strength, and a controlled partner of chosen strength to find where a strong base stops absorbing.

A control partner is made from the hidden labels plus Gaussian noise: per class, score = d x y + e,
e ~ N(0, 1), whose expected AUC is Phi(d / sqrt 2); d is tuned by bisection until the macro-AUC on
the given rows is the target, and each class's scores are then mapped onto the quantiles of a real
submission's column (``like``), so it has that submission's calibration and only its ordering is
controlled. It is a measuring instrument, never a submission.

The same instrument makes control BASES: mapped onto the real base's columns (rank-valued, like the
base) at macro-AUCs from weak to the paper's ~0.95 and beyond, each with the real head blended in at
its weight, so the head's gain can be read against the base's strength: is the plateau a property of
a strong base, or of this base?
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birdclef_eos.scoring.bootstrap import file_draws
from birdclef_eos.scoring.metric import macro_auc
from birdclef_eos.scoring.pairs import pair_counts, weighted_scores


class CeilingError(ValueError):
    pass


def quantile_map(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Per column, the values replaced by ``like``'s sorted values in the rank order of ``values``."""
    out = np.empty_like(like, dtype=np.float64)
    for c in range(values.shape[1]):
        out[np.argsort(values[:, c], kind="mergesort"), c] = np.sort(like[:, c])
    return out


def control_partner(y_true: np.ndarray, like: np.ndarray, target: float, seed: int, tol: float = 0.002,
                    max_iter: int = 60) -> tuple[np.ndarray, float]:
    """(scores [N, K], achieved macro-AUC): a partner whose macro-AUC on these rows is ``target``
    within ``tol`` (same noise draw for every d, so the AUC rises monotonically with d)."""
    y = (np.asarray(y_true) > 0.5).astype(np.float64)
    if not 0.5 <= target < 1.0:
        raise CeilingError(f"control target AUC {target} not in [0.5, 1)")
    noise = np.random.default_rng(seed).standard_normal(y.shape)
    lo, hi = 0.0, 12.0
    best = None
    for _ in range(max_iter):
        d = 0.5 * (lo + hi)
        scores = quantile_map(d * y + noise, like)
        auc = macro_auc(y, scores)
        best = (scores, auc)
        if abs(auc - target) <= tol:
            return best
        lo, hi = (d, hi) if auc < target else (lo, d)
    raise CeilingError(f"control partner: reached macro-AUC {best[1]:.4f}, not {target} +- {tol}")


@dataclass
class Curve:
    """A blend's score against its partner's weight on one board. weights [W]; score [W] on all
    files; low, high [W]: percentile band over file bootstrap draws; gain / gain_low / gain_high [W]:
    blend minus the base alone (weight 0) with its paired interval (NaN bands: a board of one file)."""
    weights: list[float]
    score: np.ndarray
    low: np.ndarray
    high: np.ndarray
    gain: np.ndarray
    gain_low: np.ndarray
    gain_high: np.ndarray

    def as_dict(self, digits: int = 6) -> dict:
        r = lambda a: [None if not np.isfinite(v) else round(float(v), digits) for v in a]  # noqa: E731
        return {"weights": self.weights, "score": r(self.score), "low": r(self.low), "high": r(self.high),
                "gain": r(self.gain), "gain_low": r(self.gain_low), "gain_high": r(self.gain_high)}


def curve(y_true: np.ndarray, base: np.ndarray, blends: dict[float, np.ndarray], groups: np.ndarray, n_boot: int,
          seed: int, confidence: float) -> Curve:
    """Score, bootstrap band and gain over the base of each blend (``blends``: weight -> scores [N, K],
    weight 0 being the base itself), all on the same file draws (``bootstrap.file_draws``)."""
    y = np.asarray(y_true) > 0.5
    weights = sorted(blends)
    if len(np.unique(np.asarray(groups).astype(str))) < 2:  # one file: nothing to resample, no band
        score = np.array([macro_auc(y, blends[w]) for w in weights])
        nan = np.full(len(weights), np.nan)
        return Curve(weights=[float(w) for w in weights], score=score, low=nan, high=nan,
                     gain=score - macro_auc(y, base), gain_low=nan.copy(), gain_high=nan.copy())
    inverse, counts = file_draws(groups, n_boot, seed)
    tail = (1 - confidence) / 2 * 100
    n_files = counts.shape[1]
    base_draws = weighted_scores(pair_counts(y, base, inverse, n_files), counts)
    base_all = macro_auc(y, base)
    score, low, high, gain, g_low, g_high = (np.full(len(weights), np.nan) for _ in range(6))
    for i, w in enumerate(weights):
        draws = weighted_scores(pair_counts(y, blends[w], inverse, n_files), counts)
        ok = np.isfinite(draws) & np.isfinite(base_draws)
        score[i] = macro_auc(y, blends[w])
        low[i], high[i] = np.percentile(draws[ok], [tail, 100 - tail])
        gain[i] = score[i] - base_all
        g_low[i], g_high[i] = np.percentile(draws[ok] - base_draws[ok], [tail, 100 - tail])
    return Curve(weights=[float(w) for w in weights], score=score, low=low, high=high, gain=gain,
                 gain_low=g_low, gain_high=g_high)


def nearest(strengths: list[float], target: float) -> float:
    """The strength closest to ``target`` (the paper's regime among the control bases)."""
    if not strengths:
        raise CeilingError("no control base strengths")
    return min(strengths, key=lambda s: (abs(s - target), s))
