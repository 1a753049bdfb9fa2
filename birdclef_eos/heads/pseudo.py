"""Pseudo-labelling (paper sections 7.1 and 7.2): the teacher's soft labels and how a student reads them.

The teacher's fold models score every chunk of the unlabelled soundscapes; the labels are kept raw
(per teacher fold, ``[n_folds, N, K]``) and turned into a student's targets only when it reads them:
``fold_labels`` picks the 5-fold mean (``ensemble``, the paper) or teacher fold k for student fold k
(``fold``: a teacher that never saw fold k's labelled chunks), then ``transform`` applies the gate
(drop chunks whose top probability is below it), the floor (probabilities below it become 0) and
the power (labels ** power). ``mixture_weights`` gives the per-row sampling weights of a batch
composition over named sources (focal / soundscape / pseudo).
"""
from __future__ import annotations

import numpy as np

MODES = ("ensemble", "fold")
SOURCES = ("focal", "soundscape", "pseudo")


class PseudoError(ValueError):
    pass


def fold_labels(per_fold: np.ndarray, mode: str, fold: int) -> np.ndarray:
    """The raw soft labels ``[N, K]`` student fold ``fold`` learns from."""
    per_fold = np.asarray(per_fold)
    if per_fold.ndim != 3:
        raise PseudoError(f"pseudo labels: expected [n_folds, N, K], got shape {per_fold.shape}")
    if mode == "ensemble":
        return per_fold.mean(axis=0)
    if mode == "fold":
        if not 0 <= fold < len(per_fold):
            raise PseudoError(f"pseudo.mode fold: student fold {fold} has no teacher fold "
                              f"(the teacher has {len(per_fold)}; train.n_folds must match it)")
        return per_fold[fold]
    raise PseudoError(f"pseudo.mode: expected one of {' | '.join(MODES)}, got {mode!r}")


def transform(probs: np.ndarray, gate: float = 0.0, floor: float = 0.0,
              power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(kept: bool [N], labels [n_kept, K]). ``gate``: keep rows whose top probability is >= gate
    (0 keeps all); ``floor``: probabilities below it become 0; ``power``: labels ** power.
    With gate 0, floor 0 and power 1 the labels come back unchanged."""
    for name, value, lo, hi in (("pseudo.gate", gate, 0, 1), ("pseudo.floor", floor, 0, 1)):
        if not lo <= value <= hi:
            raise PseudoError(f"{name} must be in [0, 1], got {value}")
    if power <= 0:
        raise PseudoError(f"pseudo.power must be > 0, got {power}")
    probs = np.asarray(probs)
    kept = probs.max(axis=1) >= gate if gate > 0 else np.ones(len(probs), dtype=bool)
    labels = probs[kept]
    if floor > 0:
        labels = np.where(labels < floor, 0.0, labels).astype(probs.dtype)
    if power != 1:
        labels = (labels ** power).astype(probs.dtype)
    return kept, labels


def check_fractions(fractions: dict, where: str = "sources") -> dict:
    """Batch shares per source: known names, each in [0, 1], summing to 1 (within 1e-6)."""
    unknown = sorted(set(fractions) - set(SOURCES))
    if unknown:
        raise PseudoError(f"{where}: unknown sources {unknown}; known: {' | '.join(SOURCES)}")
    bad = {k: v for k, v in fractions.items() if not 0.0 <= float(v) <= 1.0}
    if bad:
        raise PseudoError(f"{where}: shares must be in [0, 1], got {bad}")
    total = sum(float(v) for v in fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise PseudoError(f"{where}: shares must sum to 1, got {total:g} ({fractions})")
    return {k: float(v) for k, v in fractions.items()}


def mixture_weights(source: np.ndarray, fractions: dict) -> np.ndarray:
    """Per-row sampling weights so that a batch holds each source's share on average, uniform
    within a source. ``source``: one name per row (focal | soundscape | pseudo)."""
    fractions = check_fractions(fractions)
    source = np.asarray(source).astype(str)
    w = np.zeros(len(source), dtype=np.float64)
    for name, share in fractions.items():
        mask = source == name
        if share > 0 and not mask.any():
            raise PseudoError(f"sources.{name} is {share} but there are no {name} rows to train on")
        if mask.any():
            w[mask] = share / mask.sum()
    return w


def summary(per_fold: np.ndarray, files: np.ndarray) -> dict:
    """Chunks, files, mean labels per chunk above 0.5 and mean top confidence of the 5-fold mean,
    and how far the teacher folds disagree (mean absolute deviation from the mean)."""
    per_fold = np.asarray(per_fold, dtype=np.float64)
    mean = per_fold.mean(axis=0)
    n = len(mean)
    return {"chunks": int(n), "files": int(len(set(np.asarray(files).astype(str).tolist()))),
            "teacher_folds": int(len(per_fold)), "classes": int(mean.shape[1]) if mean.ndim == 2 else 0,
            "labels_per_chunk_above_0_5": round(float((mean > 0.5).sum(axis=1).mean()), 6) if n else 0.0,
            "mean_top_confidence": round(float(mean.max(axis=1).mean()), 6) if n else 0.0,
            "fold_disagreement": round(float(np.abs(per_fold - mean).mean()), 6) if n else 0.0}
