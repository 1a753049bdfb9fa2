"""The paper's v7 sweep, rebuilt: post-processing knobs on a grid, each scored on the labelled
soundscape OOF, the best kept. ``sweep`` fits the prior on the same labelled chunks the OOF scores, as
an OOF sweep over prior strength does, which is how such a pick can overfit (paper section 6: v7): an
illustration. ``sweep_foldwise`` is the test: each fold's rows take a prior fitted without that
fold's files, so no chunk's own labels reach its score.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from birdclef_eos.scoring.metric import macro_auc
from birdclef_eos.scoring.postprocess import Knobs, postprocess


@dataclass
class Grid:
    """OOF macro-AUC of each (prior_alpha, sigma): scores [len(alphas), len(sigmas)]; pick: the
    best (alpha, sigma) (ties: the first in grid order)."""
    alphas: list[float]
    sigmas: list[float]
    scores: np.ndarray
    pick: tuple[float, float]


def sweep(P: np.ndarray, truth: np.ndarray, rows: pd.DataFrame, base: Knobs, alphas: list[float],
          sigmas: list[float], prior: dict, species: pd.DataFrame | None = None, progress=None) -> Grid:
    """Post-process the OOF probabilities ``P`` [N, K] (``rows``: file_id, chunk, site, hour) with
    ``base`` knobs but each (prior_alpha, sigma) of the grid, and score each against ``truth`` [N, K]."""
    scores = np.full((len(alphas), len(sigmas)), np.nan)
    cells = [(i, j) for i in range(len(alphas)) for j in range(len(sigmas))]
    for i, j in (progress(cells) if progress else cells):
        knobs = replace(base, prior_alpha=float(alphas[i]), sigma=float(sigmas[j]))
        scores[i, j] = macro_auc(truth, postprocess(P, rows, knobs, prior=prior, species=species))
    i, j = np.unravel_index(int(np.nanargmax(scores)), scores.shape)
    return Grid(alphas=list(alphas), sigmas=list(sigmas), scores=scores, pick=(float(alphas[i]), float(sigmas[j])))


def sweep_foldwise(P: np.ndarray, truth: np.ndarray, rows: pd.DataFrame, base: Knobs, alphas: list[float],
                   sigmas: list[float], fold_priors: list[tuple[np.ndarray, dict]], species: pd.DataFrame | None = None,
                   progress=None) -> Grid:
    """``sweep`` without the leak: ``fold_priors`` is [(bool mask [N] of a fold's rows, the prior fitted
    without that fold's files)], the masks covering every row once; each cell post-processes each
    fold with its own prior and scores the assembled OOF."""
    covered = np.sum([m.astype(int) for m, _ in fold_priors], axis=0)
    if not np.array_equal(covered, np.ones(len(P), dtype=int)):
        raise ValueError("fold_priors: the folds' masks must cover every OOF row exactly once")
    scores = np.full((len(alphas), len(sigmas)), np.nan)
    cells = [(i, j) for i in range(len(alphas)) for j in range(len(sigmas))]
    for i, j in (progress(cells) if progress else cells):
        knobs = replace(base, prior_alpha=float(alphas[i]), sigma=float(sigmas[j]))
        out = np.zeros_like(P)
        for mask, prior in fold_priors:
            out[mask] = postprocess(P[mask], rows[mask].reset_index(drop=True), knobs, prior=prior, species=species)
        scores[i, j] = macro_auc(truth, out)
    i, j = np.unravel_index(int(np.nanargmax(scores)), scores.shape)
    return Grid(alphas=list(alphas), sigmas=list(sigmas), scores=scores, pick=(float(alphas[i]), float(sigmas[j])))
