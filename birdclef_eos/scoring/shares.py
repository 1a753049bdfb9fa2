"""How much of a blend each part carries: its effective share against its nominal weight.

Apart from blend.py on purpose: blend.py is read by the base chain, the Kaggle model folder and the
bundles, which would re-run for a statistic none of them uses.
"""
from __future__ import annotations

import numpy as np

from birdclef_eos.scoring.blend import SPACES, BlendError, rank_columns


def effective_shares(arrays: dict[str, np.ndarray], weights: dict[str, float], space: str) -> dict[str, dict]:
    """Part -> {weight, effective}: the nominal weight, and the part's share of the blend's per-column
    spread: per class, the standard deviation over rows of weight x part (in ``space``, as ``mix``
    adds them) divided by the sum of those over the parts, then the median over classes.

    A rank-valued part (every column spread over [0, 1]) mixed in probability space with a
    probability-valued one (columns of a few hundredths) carries nearly all of the spread whatever the
    weights say: a 7 % weight on the small-scale part moves the blend by a fraction of a percent. A
    column where no part varies has no share and is left out."""
    if space not in SPACES:
        raise BlendError(f"blend space must be one of {SPACES}, not {space!r}")
    spread = {p: w * np.std(arrays[p] if space == "prob" else rank_columns(arrays[p]), axis=0)
              for p, w in weights.items()}
    total = sum(spread.values())
    varies = total > 0
    out = {}
    for p, w in weights.items():
        share = spread[p][varies] / total[varies]
        out[p] = {"weight": round(float(w), 6),
                  "effective": round(float(np.median(share)), 6) if share.size else None}
    return out
